// The console: the session, the frame, and the routes. Every page but the
// flags list is loaded on first visit (its own chunk), so the first page
// costs only what it shows.
import { ErrorBoundary, LocationProvider, Route, Router, lazy } from "preact-iso";
import { api, must } from "./api";
import { ErrorNote } from "./components/ErrorNote";
import { Layout } from "./components/Layout";
import { useLoad } from "./hooks";
import { Home } from "./pages/Home";
import { NotFound } from "./pages/NotFound";
import { SignIn } from "./pages/SignIn";
import { FlagList } from "./pages/flags/List";
import { loadMe, MeContext } from "./session";

const Flag = lazy(() => import("./pages/flags/Flag"));
const Segments = lazy(() => import("./pages/segments/Segments"));
const Layers = lazy(() => import("./pages/layers/Layers"));
const Experiments = lazy(() => import("./pages/experiments/List"));
const ExperimentDesign = lazy(() => import("./pages/experiments/Design"));
const Experiment = lazy(() => import("./pages/experiments/Experiment"));
const Rollouts = lazy(() => import("./pages/rollouts/Rollouts"));
const Changes = lazy(() => import("./pages/changes/List"));
const Change = lazy(() => import("./pages/changes/Change"));
const Publishing = lazy(() => import("./pages/publishing/Publishing"));
const Audit = lazy(() => import("./pages/audit/Audit"));

const P = "/orgs/:org/projects/:project";

export function App() {
  const me = useLoad(loadMe, []);
  if (me.loading && !me.data) return <p aria-busy="true">Loading…</p>;
  if (me.error) return <ErrorNote error={me.error} />;
  if (!me.data) return <SignIn />;
  return (
    <MeContext.Provider value={me.data}>
      <LocationProvider>
        <Layout>
          <ErrorBoundary>
            <Router>
              <Route path="/" component={Home} />
              <Route path="/orgs/:org" component={Home} />
              <Route path="/orgs/:org/audit" component={Audit} />
              <Route path={`${P}`} component={FlagList} />
              <Route path={`${P}/flags`} component={FlagList} />
              <Route path={`${P}/flags/:flag`} component={Flag} />
              <Route path={`${P}/segments`} component={Segments} />
              <Route path={`${P}/layers`} component={Layers} />
              <Route path={`${P}/experiments`} component={Experiments} />
              <Route path={`${P}/experiments/new`} component={ExperimentDesign} />
              <Route path={`${P}/experiments/:env/:experiment`} component={Experiment} />
              <Route path={`${P}/experiments/:env/:experiment/edit`} component={ExperimentDesign} />
              <Route path={`${P}/rollouts`} component={Rollouts} />
              <Route path={`${P}/changes`} component={Changes} />
              <Route path={`${P}/changes/:env/:id`} component={Change} />
              <Route path={`${P}/publishing`} component={Publishing} />
              <Route default component={NotFound} />
            </Router>
          </ErrorBoundary>
        </Layout>
      </LocationProvider>
    </MeContext.Provider>
  );
}

// Keeps `api` and `must` in the main chunk for every lazy page.
export { api, must };

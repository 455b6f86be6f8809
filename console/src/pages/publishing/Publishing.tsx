import { UnderConstruction } from "../UnderConstruction";

export default function Page() {
  return <UnderConstruction title="Publishing" />;
}

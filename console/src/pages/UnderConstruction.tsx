// Interim: a page whose implementation has not landed yet. Every use of it is
// replaced before the console ships (tests/console checks no page shows it).
export function UnderConstruction({ title }: { title: string }) {
  return (
    <section>
      <h1>{title}</h1>
      <p class="note">This page is not built yet.</p>
    </section>
  );
}

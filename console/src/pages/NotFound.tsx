export function NotFound() {
  return (
    <section>
      <h1>Not found</h1>
      <p>
        There is nothing at this address. <a href="/">Go to the start</a>.
      </p>
    </section>
  );
}

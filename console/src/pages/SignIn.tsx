// Shown when there is no session: where to sign in.
export function SignIn() {
  return (
    <main id="main" class="signin">
      <h1>
        <span aria-hidden="true">⚑</span> bunting
      </h1>
      <p>Sign in to manage flags, experiments and rollouts.</p>
      <p>
        <a class="button primary" href="/auth/login">
          Sign in with your identity provider
        </a>
      </p>
      <p class="muted">
        No identity provider configured? The administrator signs in once with the link <code>bunting serve</code> printed
        at start, or a new one from <code>bunting sign-in-link</code>.
      </p>
    </main>
  );
}

// A real OpenID provider for the origin's sign-in tests: `oidc-provider`
// (a certified implementation) on 127.0.0.1, with real keys, real
// signatures and the real authorization code flow (PKCE required).
//
//   node tests/oidc/provider.mjs '{"redirectUri": "http://127.0.0.1:PORT/auth/callback",
//                                  "email": "alice@example.com", "groups": ["sre"]}'
//
// prints one JSON line `{"issuer": "http://127.0.0.1:N"}` when it listens,
// and runs until killed (or until its standard input closes).
//
// Clients: `bunting` (ID tokens RS256) and `bunting-es` (ES256), both with
// the secret `bunting-secret` (client_secret_basic) and PKCE required.
//
// The login and consent screens are replaced by a handler that signs in
// the one configured user and grants what the client asked for: the user
// never types anything, everything else is the provider's own code.
//
// To test how the relying party treats a bad ID token, `POST /_test/tamper`
// with `{"mode": "signature" | "audience" | "nonce" | "expired"}` makes
// the token endpoint's next answer carry an ID token that was changed and
// signed again (with the provider's own key, or for `signature` with
// another key under the same `kid`).

import http from 'node:http';
import crypto from 'node:crypto';
import Provider from 'oidc-provider';

const options = JSON.parse(process.argv[2] ?? '{}');
const redirectUri = options.redirectUri;
if (!redirectUri) {
  console.error('usage: provider.mjs \'{"redirectUri": "..."}\'');
  process.exit(2);
}
const user = {
  email: options.email ?? 'alice@example.com',
  groups: options.groups ?? ['sre'],
  name: options.name ?? 'Alice Example',
  emailVerified: options.emailVerified ?? true,
};

// The signing keys, kept here so that the tamper modes can sign again.
function keyPair(type, params, kid, alg) {
  const { privateKey } = crypto.generateKeyPairSync(type, params);
  return { privateKey, jwk: { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' } };
}
const rsa = keyPair('rsa', { modulusLength: 2048 }, 'rs-1', 'RS256');
const ec = keyPair('ec', { namedCurve: 'P-256' }, 'es-1', 'ES256');
const keys = { 'rs-1': rsa.privateKey, 'es-1': ec.privateKey };

let tamper = null;

const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
const unb64 = (s) => JSON.parse(Buffer.from(s, 'base64url').toString());

function resign(jwt, mode) {
  const [h, p] = jwt.split('.');
  const header = unb64(h);
  const payload = unb64(p);
  let key = keys[header.kid];
  const now = Math.floor(Date.now() / 1000);
  if (mode === 'audience') {
    payload.aud = 'someone-else';
    delete payload.azp;
  } else if (mode === 'nonce') {
    payload.nonce = 'not-the-nonce';
  } else if (mode === 'expired') {
    payload.iat = now - 7200;
    payload.exp = now - 3600;
  } else if (mode === 'signature') {
    key = header.alg === 'ES256'
      ? crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
      : crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  } else {
    throw new Error(`unknown tamper mode ${mode}`);
  }
  const input = `${b64(header)}.${b64(payload)}`;
  const signature = crypto.sign('sha256', Buffer.from(input), {
    key,
    dsaEncoding: 'ieee-p1363',
  });
  return `${input}.${signature.toString('base64url')}`;
}

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const client = (id, alg) => ({
    client_id: id,
    client_secret: 'bunting-secret',
    redirect_uris: [redirectUri],
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: alg,
  });
  const provider = new Provider(issuer, {
    clients: [client('bunting', 'RS256'), client('bunting-es', 'ES256')],
    jwks: { keys: [rsa.jwk, ec.jwk] },
    pkce: { required: () => true },
    features: { devInteractions: { enabled: false } },
    // Scope-requested claims go into the ID token (the relying party reads
    // the ID token only).
    conformIdTokenClaims: false,
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    scopes: ['openid', 'email', 'profile', 'groups'],
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(ctx, id) {
      return {
        accountId: id,
        async claims() {
          return {
            sub: id,
            email: user.email,
            email_verified: user.emailVerified,
            name: user.name,
            groups: user.groups,
          };
        },
      };
    },
  });
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path === '/token' && ctx.status === 200 && tamper && ctx.body?.id_token) {
      ctx.body = { ...ctx.body, id_token: resign(ctx.body.id_token, tamper) };
      tamper = null;
    }
  });
  const callback = provider.callback();

  async function interaction(req, res) {
    const details = await provider.interactionDetails(req, res);
    const { prompt, params, session } = details;
    if (prompt.name === 'login') {
      await provider.interactionFinished(req, res, { login: { accountId: 'alice' } }, {
        mergeWithLastSubmission: false,
      });
      return;
    }
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, {
      mergeWithLastSubmission: true,
    });
  }

  server.on('request', (req, res) => {
    if (req.url.startsWith('/interaction/')) {
      interaction(req, res).catch((e) => {
        res.statusCode = 500;
        res.end(String(e));
      });
    } else if (req.method === 'POST' && req.url === '/_test/tamper') {
      let body = '';
      req.on('data', (c) => { body += c; });
      req.on('end', () => {
        tamper = JSON.parse(body).mode;
        res.statusCode = 204;
        res.end();
      });
    } else {
      callback(req, res);
    }
  });
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

// Stop with the test that started it.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();

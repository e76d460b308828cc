// A local OpenID provider configured like Pro Santé Connect, for cps-middleware's tests.
//
// panva's oidc-provider (OpenID-certified) with PSC's shape: a Keycloak-like
// realm path (/auth/realms/esante-wallet), discovery also at
// .well-known/wallet-openid-configuration, acr eidas1, PSC scopes and claims
// (SubjectNameID = the national identifier), CIBA in poll mode with a test
// approver standing in for the e-CPS phone, tls_client_auth against the test
// PKI's organisation CA (this server terminates TLS itself and asks for a
// client certificate), certificate-bound access tokens, PAR, and an RFC 8693
// token-exchange grant (the national authorisation server's role).
//
// Usage: node server.mjs CONFIG.json — prints one JSON line {"port": N,
// "issuer": "..."} on stdout when it listens. The test approver is driven by
// POST /__test__/approver {"login_hint": "...", "action": "approve" | "deny" |
// "pending" | "slow", "delay_ms": N}; POST /__test__/rotate {"jwk": {...}}
// adds a new signing key in front of the old ones (JWKS rotation); POST
// /__test__/clients {"client": {...}} registers one more client.

import { readFileSync } from 'node:fs';
import * as https from 'node:https';
import { X509Certificate, createHash } from 'node:crypto';

import Provider, { errors } from 'oidc-provider';
import { SignJWT, importJWK } from 'jose';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const issuerPath = cfg.issuer_path;
const CIBA_GRANT = 'urn:openid:params:grant-type:ciba';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const TOKEN_TYPES = new Set([
  'urn:ietf:params:oauth:token-type:access_token',
  'urn:ietf:params:oauth:token-type:jwt',
]);

// --- test approver (the practitioner's phone or card) -----------------------
const policies = new Map(); // login_hint -> {action, delay_ms}
const pacing = new Map(); // auth_req_id -> {min_ms, last}
let signingKeys = [...cfg.jwks.keys];

function policyFor(accountId) {
  return policies.get(accountId) || cfg.default_policy || { action: 'approve', delay_ms: 300 };
}

function pemOf(ctx) {
  const cert = ctx.socket.getPeerX509Certificate?.();
  return cert ? cert.toString() : undefined;
}

function rfc4514(subject) {
  // node gives "C=FR\nO=...\nGN=A + SN=B + CN=..."; RFC 4514 lists the RDNs last
  // to first and joins multi-valued ones with "+" (the client registrations use
  // node's short names: GN, SN, title).
  return subject.split('\n').reverse().map((rdn) => rdn.split(' + ').join('+')).join(',');
}

function x5tS256(pem) {
  return createHash('sha256').update(new X509Certificate(pem).raw).digest('base64url');
}

async function approve(provider, request, accountId, clientId) {
  const grant = new provider.Grant({ accountId, clientId });
  grant.addOIDCScope(request.scope);
  await grant.save();
  const channel = request.params?.channel;
  await provider.backchannelResult(request, grant, {
    acr: 'eidas1',
    amr: [channel === 'CARD' ? 'sc' : 'mfa'],
    authTime: Math.floor(Date.now() / 1000),
  });
}

// --- token exchange (RFC 8693), as the national authorisation server ----------
function tokenExchangeHandler(current) {
  return async function tokenExchange(ctx) {
    const { params, client } = ctx.oidc;
    for (const name of ['subject_token', 'subject_token_type']) {
      if (!params[name]) throw new errors.InvalidRequest(`missing required parameter '${name}'`);
    }
    if (!TOKEN_TYPES.has(params.subject_token_type)) {
      throw new errors.InvalidRequest('unsupported subject_token_type');
    }
    const cert = pemOf(ctx);
    if (!cert || !ctx.socket.authorized) {
      throw new errors.InvalidClient('mutual TLS with the organisation certificate is required');
    }
    const subject = await current.provider.AccessToken.find(params.subject_token);
    if (!subject || subject.isExpired) {
      throw new errors.InvalidGrant('subject_token is invalid, expired or revoked');
    }
    const allowed = new Set((cfg.exchange_scopes || []));
    const requested = (params.scope || '').split(' ').filter(Boolean);
    const refused = requested.filter((s) => !allowed.has(s));
    if (refused.length) {
      throw new errors.InvalidScope(`scope not allowed for this client: ${refused.join(' ')}`, refused.join(' '));
    }
    const audience = params.audience || params.resource;
    if (audience && !(cfg.exchange_audiences || []).includes(audience)) {
      throw new errors.InvalidTarget('unknown audience');
    }
    const key = signingKeys[0];
    const now = Math.floor(Date.now() / 1000);
    const expiresIn = cfg.exchange_ttl || 60;
    const jwt = await new SignJWT({
      scope: requested.join(' ') || undefined,
      client_id: client.clientId,
      SubjectNameID: subject.accountId,
      cnf: { 'x5t#S256': x5tS256(cert) },
      act: { sub: client.clientId },
    })
      .setProtectedHeader({ alg: 'RS256', kid: key.kid, typ: 'at+jwt' })
      .setIssuer(current.provider.issuer)
      .setSubject(subject.accountId)
      .setAudience(audience || client.clientId)
      .setIssuedAt(now)
      .setExpirationTime(now + expiresIn)
      .setJti(createHash('sha256').update(`${now}${Math.random()}`).digest('hex').slice(0, 24))
      .sign(await importJWK(key, 'RS256'));
    ctx.body = {
      access_token: jwt,
      issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      token_type: 'Bearer',
      expires_in: expiresIn,
      scope: requested.join(' ') || undefined,
    };
  };
}

// --- the provider ---------------------------------------------------------------
function makeProvider(issuer, current) {
  const accounts = cfg.accounts;
  const provider = new Provider(issuer, {
    clients: cfg.clients,
    jwks: { keys: signingKeys },
    cookies: { keys: ['cps-middleware-test-cookie-key'] },
    acrValues: ['eidas1'],
    clientAuthMethods: ['tls_client_auth'],
    scopes: ['openid', 'offline_access', 'scope_all', 'profile', 'rpps', 'identity', 'email'],
    claims: {
      openid: ['sub'],
      profile: ['given_name', 'family_name', 'preferred_username'],
      scope_all: ['SubjectNameID', 'SubjectRefPro', 'SubjectOrganization', 'given_name',
        'family_name', 'preferred_username', 'email'],
      rpps: ['SubjectNameID'],
      email: ['email'],
    },
    conformIdTokenClaims: false,
    extraParams: ['channel'],
    findAccount: async (ctx, sub) => {
      const claims = accounts[sub];
      if (!claims) return undefined;
      return { accountId: sub, claims: async () => ({ sub, ...claims }) };
    },
    pkce: { required: () => true },
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    interactions: { url: (ctx, interaction) => `${issuerPath}/interaction/${interaction.uid}` },
    routes: {
      authorization: '/protocol/openid-connect/auth',
      backchannel_authentication: '/protocol/openid-connect/ext/ciba/auth',
      end_session: '/protocol/openid-connect/logout',
      introspection: '/protocol/openid-connect/token/introspect',
      jwks: '/protocol/openid-connect/certs',
      pushed_authorization_request: '/protocol/openid-connect/ext/par/request',
      revocation: '/protocol/openid-connect/revoke',
      token: '/protocol/openid-connect/token',
      userinfo: '/protocol/openid-connect/userinfo',
    },
    ttl: {
      AccessToken: cfg.access_token_ttl || 300,
      IdToken: 300,
      RefreshToken: 3600,
    },
    features: {
      devInteractions: { enabled: false },
      introspection: { enabled: true },
      revocation: { enabled: true },
      userinfo: { enabled: true },
      jwtUserinfo: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      pushedAuthorizationRequests: { enabled: true, requirePushedAuthorizationRequests: false },
      claimsParameter: { enabled: true },
      ciba: {
        enabled: true,
        deliveryModes: ['poll'],
        processLoginHint: async (ctx, loginHint) => (accounts[loginHint] ? loginHint : undefined),
        verifyUserCode: async () => {},
        validateRequestContext: async () => {},
        validateBindingMessage: async (ctx, message) => {
          if (message !== undefined && !/^[\p{L}\p{N} .,:!?#+\-/]{1,40}$/u.test(message)) {
            throw new errors.InvalidBindingMessage('binding_message: 1 to 40 letters, digits or punctuation');
          }
          const { channel } = ctx.oidc.params;
          if (channel !== undefined && !['CARD', 'MOBILE'].includes(channel)) {
            throw new errors.InvalidRequest("channel must be 'CARD' or 'MOBILE'");
          }
        },
        triggerAuthenticationDevice: async (ctx, request, account, client) => {
          const interval = cfg.ciba_interval || 1;
          ctx.body.interval = interval;
          const policy = policyFor(account.accountId);
          pacing.set(request.jti, {
            min_ms: (policy.action === 'slow' ? interval + 2 : interval) * 1000 - 150,
            last: 0,
          });
          const delay = policy.delay_ms ?? 300;
          if (policy.action === 'approve' || policy.action === 'slow') {
            setTimeout(() => approve(current.provider, request, account.accountId, client.clientId)
              .catch((e) => console.error('approve failed', e)), delay);
          } else if (policy.action === 'deny') {
            setTimeout(() => current.provider.backchannelResult(
              request, new errors.AccessDenied('the practitioner refused the authentication'),
            ).catch((e) => console.error('deny failed', e)), delay);
          } // 'pending': nobody answers; the request expires (requested_expiry)
        },
      },
      mTLS: {
        enabled: true,
        certificateBoundAccessTokens: true,
        tlsClientAuth: true,
        getCertificate: pemOf,
        certificateAuthorized: (ctx) => ctx.socket.authorized === true,
        certificateSubjectMatches: (ctx, property, expected) => {
          if (property !== 'tls_client_auth_subject_dn') return false;
          const pem = pemOf(ctx);
          return !!pem && rfc4514(new X509Certificate(pem).subject) === expected;
        },
      },
    },
  });
  provider.proxy = false;
  provider.registerGrantType(
    TOKEN_EXCHANGE,
    tokenExchangeHandler(current),
    ['subject_token', 'subject_token_type', 'actor_token', 'actor_token_type',
      'requested_token_type', 'audience', 'resource', 'scope'],
  );
  return provider;
}

// CIBA slow_down: oidc-provider leaves poll pacing to the deployment; PSC's
// Keycloak answers slow_down to a client polling faster than the interval.
function pacingMiddleware(req) {
  const body = req.cpsBody;
  if (!body || body.get('grant_type') !== CIBA_GRANT) return null;
  const pace = pacing.get(body.get('auth_req_id'));
  if (!pace) return null;
  const now = Date.now();
  const tooFast = pace.last && now - pace.last < pace.min_ms;
  pace.last = now;
  return tooFast ? { error: 'slow_down', error_description: 'you are polling too quickly' } : null;
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks);
}

function sendJson(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

async function interaction(current, req, res) {
  const provider = current.provider;
  const details = await provider.interactionDetails(req, res);
  const { params, prompt } = details;
  const accountId = params.login_hint || cfg.default_account;
  const policy = policyFor(accountId);
  if (!cfg.accounts[accountId] || policy.action === 'deny') {
    await provider.interactionFinished(req, res, {
      error: 'access_denied', error_description: 'the practitioner refused the authentication',
    }, { mergeWithLastSubmission: false });
    return;
  }
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId, clientId: params.client_id });
  grant.addOIDCScope(params.scope);
  if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, {
    login: { accountId, acr: 'eidas1', amr: ['mfa'] },
    consent: { grantId },
  }, { mergeWithLastSubmission: false });
}

async function admin(current, req, res, path) {
  const body = JSON.parse((await readBody(req)).toString() || '{}');
  if (path === '/__test__/approver') {
    if (body.reset) policies.clear();
    if (body.login_hint) policies.set(body.login_hint, { action: body.action, delay_ms: body.delay_ms });
    return sendJson(res, 200, { policies: Object.fromEntries(policies) });
  }
  if (path === '/__test__/clients') {
    cfg.clients = [...cfg.clients.filter((c) => c.client_id !== body.client.client_id), body.client];
    current.provider = makeProvider(current.provider.issuer, current);
    return sendJson(res, 200, { clients: cfg.clients.map((c) => c.client_id) });
  }
  if (path === '/__test__/rotate') {
    signingKeys = [body.jwk, ...signingKeys];
    current.provider = makeProvider(current.provider.issuer, current);
    return sendJson(res, 200, { kids: signingKeys.map((k) => k.kid) });
  }
  return sendJson(res, 404, { error: 'not_found' });
}

const current = { provider: null };

async function handle(req, res) {
  const path = req.url.split('?')[0];
  try {
    if (path.startsWith('/__test__/')) return await admin(current, req, res, path);
    if (!path.startsWith(issuerPath)) return sendJson(res, 404, { error: 'not_found' });
    let rest = req.url.slice(issuerPath.length) || '/';
    rest = rest.replace(/^\/\.well-known\/wallet-openid-configuration/, '/.well-known/openid-configuration');
    if (rest.startsWith('/interaction/')) return await interaction(current, req, res);
    if (req.method === 'POST' && rest.startsWith('/protocol/openid-connect/token')
        && !rest.startsWith('/protocol/openid-connect/token/introspect')) {
      const raw = await readBody(req);
      req.body = raw;
      req.cpsBody = new URLSearchParams(raw.toString());
      const slow = pacingMiddleware(req);
      if (slow) return sendJson(res, 400, slow);
    }
    req.originalUrl = issuerPath + rest;
    req.url = rest;
    return current.provider.callback()(req, res);
  } catch (err) {
    console.error(err);
    return sendJson(res, 500, { error: 'server_error', error_description: String(err.message) });
  }
}

const server = https.createServer({
  key: cfg.tls.key,
  cert: cfg.tls.cert,
  ca: cfg.tls.client_cas,
  crl: cfg.tls.crls && cfg.tls.crls.length ? cfg.tls.crls : undefined,
  requestCert: true,
  rejectUnauthorized: false,
}, (req, res) => { handle(req, res); });

server.listen(cfg.port || 0, cfg.host || '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `https://${cfg.host || '127.0.0.1'}:${port}${issuerPath}`;
  current.provider = makeProvider(issuer, current);
  process.stdout.write(`${JSON.stringify({ port, issuer })}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}

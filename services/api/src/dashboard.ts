// The web dashboard (packages/dashboard), served from its built bundle at /ui/, with `/` redirecting
// there. The pages are public (they hold no secret: the token is typed into the page's login form
// and sent by the page's own requests), and every one carries a strict Content-Security-Policy.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';

/** Where `pnpm --filter @lxcq/dashboard build` writes the bundle (LXCQ_DASHBOARD_DIR overrides it). */
export const DEFAULT_DASHBOARD_DIR = fileURLToPath(
  new URL('../../../packages/dashboard/dist/', import.meta.url),
);

export const DASHBOARD_PREFIX = '/ui/';

/** How to get a bundle when there is none; shown on /ui/ and logged at start. */
export const BUILD_HINT =
  'run `pnpm --filter @lxcq/dashboard build` in the lxcq checkout (scripts/setup-host.sh, which scripts/run.sh and scripts/test.sh run, does it)';

/**
 * Scripts, styles, images and connections from this origin only: no inline script or style, no
 * eval, no plugin, no framing. `connect-src 'self'` covers the same origin's ws:// and wss://.
 */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': DASHBOARD_CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=(), usb=(), payment=()',
  // The bundle changes with every build under the same names: always revalidate (ETag makes that cheap).
  'cache-control': 'no-cache',
};

export function dashboardBuilt(dir: string): boolean {
  return existsSync(join(dir, 'index.html'));
}

/** Registers `/` -> `/ui/` and the bundle under /ui/ (or a 503 naming the build command when it is missing). */
export async function dashboardRoutes(
  app: FastifyInstance,
  dir: string,
  log: FastifyBaseLogger,
): Promise<void> {
  if (!dashboardBuilt(dir))
    log.warn(`the web dashboard is not built (${dir} has no index.html): ${BUILD_HINT}`);

  app.get('/', { config: { public: true }, schema: { hide: true } }, (_req, reply) =>
    reply.redirect(DASHBOARD_PREFIX),
  );

  await app.register(async (scope) => {
    // Public: the pages and the bundle hold nothing secret, and a browser cannot send a token for them.
    scope.addHook('onRoute', (route) => {
      route.config = { ...route.config, public: true };
    });
    scope.addHook('onSend', async (_req, reply, payload) => {
      for (const [k, v] of Object.entries(SECURITY_HEADERS)) void reply.header(k, v);
      return payload;
    });
    // Checked per request, so a bundle built while the API runs is served without a restart.
    scope.addHook('onRequest', async (_req, reply) => {
      if (dashboardBuilt(dir)) return;
      await reply
        .code(503)
        .type('text/plain; charset=utf-8')
        .send(`The lxcq web dashboard is not built: ${BUILD_HINT}, then reload this page.\n`);
    });
    await scope.register(fastifyStatic, {
      root: dir,
      // Without the trailing slash, so that `/ui` redirects to `/ui/`; no directory listings, no dotfiles, nothing outside the bundle.
      prefix: '/ui',
      redirect: true,
      index: ['index.html'],
      list: false,
      dotfiles: 'deny',
      cacheControl: false,
      decorateReply: false,
      // The bundle may not exist yet at start (the warning above says so).
      suppressWarning: true,
    });
  });
}

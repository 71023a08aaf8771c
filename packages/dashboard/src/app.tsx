/**
 * The app: a login form, then the dashboard. The token is typed in by the user and kept in this
 * tab's sessionStorage only (gone when the tab closes); the page's source holds no secret.
 */
import { LxcqClient, LxcqConnectionError, LxcqError } from '@lxcq/client';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { ContainersPanel, EventsPanel, HostsPanel, JobsPanel } from './panels.tsx';
import { Store, type View } from './store.ts';

const TOKEN_KEY = 'lxcq.token';

function storedToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

/** The API serving this page: the dashboard talks to its own origin only (CSP connect-src 'self'). */
function apiUrl(): string {
  return window.location.origin;
}

/** What to tell the user when a token cannot be used. */
export function loginError(err: unknown): string {
  if (err instanceof LxcqError) {
    if (err.status === 401)
      return `The API refused this token (${err.code}). Use the token lxcq printed at start (sudo cat /var/lib/lxcq/token) or one from LXCQ_TOKENS_FILE.`;
    return `${err.code}: ${err.message}`;
  }
  if (err instanceof LxcqConnectionError) return `Cannot reach the lxcq API (${err.reason}). Is it running?`;
  return err instanceof Error ? err.message : String(err);
}

export function App() {
  const [token, setToken] = useState<string | null>(storedToken);
  const [message, setMessage] = useState<string | null>(null);

  const signOut = (why: string | null) => {
    try {
      sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      // storage disabled: nothing was kept
    }
    setMessage(why);
    setToken(null);
  };

  if (token === null)
    return (
      <Login
        message={message}
        onLogin={(t) => {
          try {
            sessionStorage.setItem(TOKEN_KEY, t);
          } catch {
            // storage disabled: signed in for as long as the page stays open
          }
          setMessage(null);
          setToken(t);
        }}
      />
    );
  return <Dashboard token={token} onSignOut={signOut} />;
}

function Login(props: { message: string | null; onLogin: (token: string) => void }) {
  const [value, setValue] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(props.message);

  const submit = async (e: Event) => {
    e.preventDefault();
    const t = value.trim();
    if (!t) {
      setError('Enter a token.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      // Any read checks the token (the dashboard needs the read scope at least).
      await new LxcqClient({ url: apiUrl(), token: t }).hosts.list();
      props.onLogin(t);
    } catch (err) {
      setError(loginError(err));
      setBusy(false);
    }
  };

  return (
    <main class="login">
      <form class="card login-card" onSubmit={(e) => void submit(e)} aria-labelledby="login-title">
        <h1 id="login-title">
          <span class="brand">lxcq</span> dashboard
        </h1>
        <p class="muted">Sign in with an lxcq API token. It is kept in this browser tab only.</p>
        <label for="token">API token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="off"
          spellcheck={false}
          value={value}
          onInput={(e) => setValue(e.currentTarget.value)}
          disabled={busy}
          required
        />
        {error && (
          <p class="form-error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}

function useView(store: Store): View {
  const [view, setView] = useState(store.current);
  useEffect(() => {
    const off = store.subscribe(() => setView(store.current));
    setView(store.current);
    return off;
  }, [store]);
  return view;
}

function Dashboard(props: { token: string; onSignOut: (why: string | null) => void }) {
  const store = useMemo(
    () =>
      new Store(new LxcqClient({ url: apiUrl(), token: props.token }), (err) =>
        props.onSignOut(loginError(err)),
      ),
    [props.token],
  );
  useEffect(() => {
    store.start();
    return () => store.stop();
  }, [store]);
  const view = useView(store);

  return (
    <div class="shell">
      <header class="topbar">
        <span class="brand">lxcq</span>
        <ConnectionBadge view={view} />
        <HealthBadge view={view} />
        <span class="spacer" />
        <button type="button" class="ghost" onClick={() => props.onSignOut(null)}>
          Sign out
        </button>
      </header>
      <Notices view={view} store={store} />
      <main class="grid">
        <HostsPanel view={view} />
        <ContainersPanel view={view} store={store} />
        <JobsPanel view={view} />
        <EventsPanel view={view} />
      </main>
    </div>
  );
}

function ConnectionBadge({ view }: { view: View }) {
  const label = {
    connecting: 'connecting…',
    live: 'live',
    reconnecting: 'reconnecting…',
    closed: 'disconnected',
  }[view.connection];
  return (
    <span
      class={`badge conn-${view.connection}`}
      data-connection={view.connection}
      title={view.connection === 'reconnecting' ? view.connectionError : 'Events over WebSocket'}
    >
      <span class="dot" /> events {label}
    </span>
  );
}

function HealthBadge({ view }: { view: View }) {
  const h = view.health;
  if (!h) return null;
  const hosts = h.hosts ? `, ${h.hosts.online}/${h.hosts.total} hosts online` : '';
  return (
    <span class={`badge health-${h.status}`} title={h.problems.join('\n') || 'no problems'}>
      API {h.status}
      {hosts}
    </span>
  );
}

function Notices({ view, store }: { view: View; store: Store }) {
  if (view.notices.length === 0) return null;
  return (
    <div class="notices" aria-live="polite">
      {view.notices.map((n) => (
        <div key={n.id} class={`notice notice-${n.kind}`} role={n.kind === 'error' ? 'alert' : 'status'}>
          {n.code && <code class="code">{n.code}</code>}
          <span class="notice-text">{n.text}</span>
          <button type="button" class="ghost small" aria-label="Dismiss" onClick={() => store.dismiss(n.id)}>
            ×
          </button>
        </div>
      ))}
    </div>
  );
}

import type { ReactNode } from 'react';
import { Spinner } from './components/ui';
import { AdminPage } from './pages/AdminPage';
import { AdminLoginPage, LoginPage, SetPasswordPage, SignupPage } from './pages/Auth';
import { AutomationPage } from './pages/AutomationPage';
import { ContainerPage } from './pages/ContainerPage';
import { LogsPage } from './pages/LogsPage';
import { OnboardingPage } from './pages/Onboarding';
import { TokensPage } from './pages/TokensPage';
import { Link, Router, useRouter } from './router';
import { SessionProvider, useSession } from './session';

const PUBLIC = new Set(['/login', '/signup', '/admin-login', '/set-password']);

function Nav() {
  const { me, logout } = useSession();
  const { go } = useRouter();
  if (!me) return null;
  return (
    <nav aria-label="Main">
      <ul>
        {me.user && (
          <>
            <li>
              <Link to="/">My container</Link>
            </li>
            <li>
              <Link to="/automation">Automation</Link>
            </li>
            <li>
              <Link to="/logs">Logs</Link>
            </li>
            <li>
              <Link to="/tokens">Tokens</Link>
            </li>
          </>
        )}
        {me.admin && (
          <li>
            <Link to="/admin">Admin</Link>
          </li>
        )}
      </ul>
      <span className="who">
        <span className="muted" data-testid="who">{me.user?.user_id ?? 'admin'}</span>
        <button
          type="button"
          onClick={async () => {
            await logout();
            go('/login', true);
          }}
        >
          Log out
        </button>
      </span>
    </nav>
  );
}

function Forbidden({ children }: { children: ReactNode }) {
  return (
    <section className="card" data-testid="forbidden">
      <h1>Not allowed</h1>
      <p>{children}</p>
      <Link to="/">Back to my container</Link>
    </section>
  );
}

function Pages() {
  const { me, loading } = useSession();
  const { path, go } = useRouter();
  if (loading) return <Spinner />;
  if (PUBLIC.has(path)) {
    switch (path) {
      case '/signup':
        return <SignupPage />;
      case '/admin-login':
        return <AdminLoginPage />;
      case '/set-password':
        return <SetPasswordPage />;
      default:
        return <LoginPage />;
    }
  }
  if (!me) {
    queueMicrotask(() => go('/login', true));
    return <Spinner />;
  }
  if (path === '/admin') {
    return me.admin ? <AdminPage /> : <Forbidden>The admin console is for the operator only.</Forbidden>;
  }
  const userId = me.user?.user_id;
  if (!userId) {
    // The admin has no container of their own.
    queueMicrotask(() => go('/admin', true));
    return <Spinner />;
  }
  switch (path) {
    case '/onboarding':
      return <OnboardingPage userId={userId} />;
    case '/automation':
      return <AutomationPage userId={userId} />;
    case '/logs':
      return <LogsPage userId={userId} />;
    case '/tokens':
      return <TokensPage />;
    case '/':
      return <ContainerPage userId={userId} />;
    default:
      return (
        <section className="card">
          <h1>Not found</h1>
          <p>
            No page at {path}. <Link to="/">Go to my container</Link>.
          </p>
        </section>
      );
  }
}

export function App() {
  return (
    <Router>
      <SessionProvider>
        <a className="skip" href="#main">
          Skip to content
        </a>
        <header>
          <span className="brand">Berth</span>
          <Nav />
        </header>
        <main id="main" tabIndex={-1}>
          <Pages />
        </main>
      </SessionProvider>
    </Router>
  );
}

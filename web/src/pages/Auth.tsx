import { useState, type FormEvent, type ReactNode } from 'react';
import { api, message } from '../api';
import { ErrorBanner } from '../components/ui';
import { Link, useRouter } from '../router';
import { useSession } from '../session';

function AuthCard({ title, children, error }: { title: string; children: ReactNode; error: string | null }) {
  return (
    <section className="card auth">
      <h1>{title}</h1>
      <ErrorBanner error={error} />
      {children}
    </section>
  );
}

function useSubmit(fn: () => Promise<void>) {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await fn();
    } catch (err) {
      setError(message(err));
    } finally {
      setBusy(false);
    }
  };
  return { error, busy, submit };
}

export function LoginPage() {
  const { refresh, signup } = useSession();
  const { go } = useRouter();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const { error, busy, submit } = useSubmit(async () => {
    await api.login(email, password);
    await refresh();
    go('/', true);
  });
  return (
    <AuthCard title="Log in" error={error}>
      <form onSubmit={submit}>
        <label>
          Email
          <input type="email" autoComplete="email" required value={email} onChange={(e) => setEmail(e.target.value)} />
        </label>
        <label>
          Password
          <input type="password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.target.value)} />
        </label>
        <button className="primary" type="submit" disabled={busy}>
          {busy ? 'Logging in…' : 'Log in'}
        </button>
      </form>
      <p className="muted">
        {signup && (
          <>
            New here? <Link to="/signup">Create an account</Link>.{' '}
          </>
        )}
        Operator? <Link to="/admin-login">Sign in with the admin token</Link>.
      </p>
    </AuthCard>
  );
}

export function SignupPage() {
  const { refresh, signup } = useSession();
  const { go } = useRouter();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [userId, setUserId] = useState('');
  const { error, busy, submit } = useSubmit(async () => {
    await api.signup({ email, password, user_id: userId || undefined });
    await refresh();
    go('/onboarding', true);
  });
  if (!signup) {
    return (
      <AuthCard title="Sign-up is closed" error={null}>
        <p>The operator creates accounts on this Berth. Ask them for a link to set your password, then <Link to="/login">log in</Link>.</p>
      </AuthCard>
    );
  }
  return (
    <AuthCard title="Create your account" error={error}>
      <form onSubmit={submit}>
        <label>
          Email
          <input type="email" autoComplete="email" required value={email} onChange={(e) => setEmail(e.target.value)} />
        </label>
        <label>
          Password <span className="muted">(at least 10 characters)</span>
          <input type="password" autoComplete="new-password" required minLength={10} value={password} onChange={(e) => setPassword(e.target.value)} />
        </label>
        <label>
          User id <span className="muted">(optional: letters, digits, _ and -)</span>
          <input pattern="[A-Za-z0-9_\-]{1,64}" value={userId} onChange={(e) => setUserId(e.target.value)} />
        </label>
        <button className="primary" type="submit" disabled={busy}>
          {busy ? 'Creating…' : 'Sign up'}
        </button>
      </form>
      <p className="muted">
        Have an account? <Link to="/login">Log in</Link>.
      </p>
    </AuthCard>
  );
}

export function AdminLoginPage() {
  const { refresh } = useSession();
  const { go } = useRouter();
  const [token, setToken] = useState('');
  const { error, busy, submit } = useSubmit(async () => {
    await api.adminLogin(token);
    await refresh();
    go('/admin', true);
  });
  return (
    <AuthCard title="Operator sign-in" error={error}>
      <form onSubmit={submit}>
        <label>
          Admin token
          <input type="password" autoComplete="off" required value={token} onChange={(e) => setToken(e.target.value)} />
        </label>
        <button className="primary" type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
      <p className="muted">The token is exchanged for an admin session cookie; it is not kept in the page.</p>
    </AuthCard>
  );
}

export function SetPasswordPage() {
  const { refresh } = useSession();
  const { go, search } = useRouter();
  const token = new URLSearchParams(search).get('token') ?? '';
  const [password, setPassword] = useState('');
  const { error, busy, submit } = useSubmit(async () => {
    await api.setPassword(token, password);
    window.history.replaceState(null, '', '/set-password'); // drop the token from the address bar
    await refresh();
    go('/onboarding', true);
  });
  if (!token) {
    return (
      <AuthCard title="Set your password" error="This page needs the link the operator sent you.">
        <p>
          <Link to="/login">Back to log in</Link>
        </p>
      </AuthCard>
    );
  }
  return (
    <AuthCard title="Set your password" error={error}>
      <form onSubmit={submit}>
        <label>
          New password <span className="muted">(at least 10 characters)</span>
          <input type="password" autoComplete="new-password" required minLength={10} value={password} onChange={(e) => setPassword(e.target.value)} />
        </label>
        <button className="primary" type="submit" disabled={busy}>
          {busy ? 'Saving…' : 'Set password'}
        </button>
      </form>
    </AuthCard>
  );
}

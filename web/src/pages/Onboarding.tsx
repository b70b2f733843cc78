import type { Container } from '@berth/client';
import { useEffect, useRef, useState } from 'react';
import { api, message } from '../api';
import { ErrorBanner, StatusBadge } from '../components/ui';
import { useRouter } from '../router';

const steps = ['Account ready', 'Creating your container', 'Starting it', 'Running'];

function stepOf(c: Container | null, requested: boolean): number {
  if (c?.exists && c.status === 'running') return 3;
  if (c?.exists) return 2;
  return requested ? 1 : 0;
}

/** OnboardingPage creates the user's container and shows its progress until it runs. */
export function OnboardingPage({ userId }: { userId: string }) {
  const { go } = useRouter();
  const [container, setContainer] = useState<Container | null>(null);
  const [requested, setRequested] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const started = useRef(false);

  const create = async () => {
    setError(null);
    setRequested(true);
    let done = false;
    const poll = async () => {
      while (!done) {
        try {
          const c = await api.status(userId);
          if (!done) setContainer(c);
        } catch {
          /* the create call reports errors */
        }
        await new Promise((r) => setTimeout(r, 400));
      }
    };
    void poll();
    try {
      const r = await api.createMyContainer();
      setContainer(r.container);
      done = true;
      setTimeout(() => go('/', true), 600);
    } catch (e) {
      done = true;
      setError(message(e));
    }
  };

  useEffect(() => {
    if (started.current) return;
    started.current = true;
    api.status(userId).then(
      (c) => {
        setContainer(c);
        if (c.exists && c.status === 'running') go('/', true);
        else void create();
      },
      (e) => setError(message(e)),
    );
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [userId]);

  const step = stepOf(container, requested);
  return (
    <section className="card">
      <h1>Setting up your container</h1>
      <ol className="steps" aria-label="Progress">
        {steps.map((s, i) => (
          <li key={s} className={i < step ? 'done' : i === step ? 'current' : ''} aria-current={i === step ? 'step' : undefined}>
            {s}
            {i === step && i < 3 && !error && <span className="spinner" aria-hidden="true" />}
          </li>
        ))}
      </ol>
      {container?.exists && (
        <p>
          Status: <StatusBadge status={container.status} />
        </p>
      )}
      <ErrorBanner error={error} onRetry={() => void create()} />
      {step === 3 && <p role="status">Your container is running. Opening it…</p>}
    </section>
  );
}

import type { Me } from '@berth/client';
import { createContext, useCallback, useContext, useEffect, useState, type ReactNode } from 'react';
import { api } from './api';

type SessionState = { me: Me | null; loading: boolean; signup: boolean; refresh: () => Promise<Me | null>; logout: () => Promise<void> };
const SessionContext = createContext<SessionState>({ me: null, loading: true, signup: false, refresh: async () => null, logout: async () => {} });

export function SessionProvider({ children }: { children: ReactNode }) {
  const [me, setMe] = useState<Me | null>(null);
  const [loading, setLoading] = useState(true);
  const [signup, setSignup] = useState(false);
  const refresh = useCallback(async () => {
    try {
      const m = await api.me();
      setMe(m);
      return m;
    } catch {
      setMe(null);
      return null;
    } finally {
      setLoading(false);
    }
  }, []);
  const logout = useCallback(async () => {
    try {
      await api.logout();
    } finally {
      setMe(null);
    }
  }, []);
  useEffect(() => {
    void refresh();
    api.authConfig().then((c) => setSignup(c.signup), () => setSignup(false));
  }, [refresh]);
  return <SessionContext.Provider value={{ me, loading, signup, refresh, logout }}>{children}</SessionContext.Provider>;
}

export function useSession(): SessionState {
  return useContext(SessionContext);
}

import type { BerthEvent } from '@berth/client';
import { act, cleanup, fireEvent, render, renderHook, screen } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ActionFeed, FEED_CAP, useBatchedFeed } from '../src/components/ActionFeed';
import { QuotaBars, quotas } from '../src/components/QuotaBars';
import { UsageChart } from '../src/components/UsageChart';
import { ConfirmButton, formatBytes } from '../src/components/ui';

afterEach(cleanup);

const action = (seq: number): BerthEvent => ({ type: 'action', seq, action: 'like', target: `@t${seq}`, success: true, timestamp: new Date(0).toISOString() });

describe('quotas', () => {
  it('derives caps from today and remaining, and the total from the daily limit', () => {
    const q = quotas({ like: 2, follow: 1 }, { like: 1, total: 17 }, 20);
    expect(q).toEqual([
      { name: 'follow', used: 1, cap: 0 },
      { name: 'like', used: 2, cap: 3 },
      { name: 'total', used: 3, cap: 20 },
    ]);
  });
  it('shows progress and the used-up state', () => {
    render(<QuotaBars items={[{ name: 'like', used: 3, cap: 3 }, { name: 'total', used: 3, cap: 20 }]} />);
    const like = screen.getByTestId('quota-like');
    expect(like.textContent).toContain('3 / 3');
    expect(like.textContent).toContain('quota used up');
    const bar = screen.getByLabelText('total quota') as HTMLProgressElement;
    expect(bar.value).toBe(3);
    expect(bar.max).toBe(20);
  });
});

describe('useBatchedFeed', () => {
  it('renders once per animation frame and caps the list', () => {
    const frames: FrameRequestCallback[] = [];
    vi.stubGlobal('requestAnimationFrame', (cb: FrameRequestCallback) => frames.push(cb));
    vi.stubGlobal('cancelAnimationFrame', () => {});
    let renders = 0;
    const { result } = renderHook(() => {
      renders++;
      return useBatchedFeed();
    });
    const before = renders;
    act(() => {
      for (let i = 1; i <= 1000; i++) result.current.push(action(i));
    });
    expect(renders).toBe(before); // nothing rendered yet
    expect(frames).toHaveLength(1); // one frame requested for 1000 events
    act(() => frames.shift()!(0));
    expect(renders).toBe(before + 1);
    expect(result.current.total).toBe(1000);
    expect(result.current.items).toHaveLength(FEED_CAP);
    expect(result.current.items[0].seq).toBe(1000); // newest first
    act(() => result.current.push(action(1001)));
    act(() => frames.shift()!(0));
    expect(result.current.items[0].seq).toBe(1001);
    expect(result.current.items).toHaveLength(FEED_CAP);
    vi.unstubAllGlobals();
  });
});

describe('ActionFeed', () => {
  it('has an empty state', () => {
    render(<ActionFeed items={[]} total={0} />);
    expect(screen.getByText(/No actions yet/)).toBeTruthy();
  });
  it('lists events and says when it shows only the newest', () => {
    render(<ActionFeed items={[action(3), { type: 'quota_denied', action: 'like', reason: 'daily cap', timestamp: '' }]} total={500} />);
    expect(screen.getByTestId('feed-count').textContent).toBe('500 events received, showing the newest 2');
    expect(screen.getByText('like @t3')).toBeTruthy();
    expect(screen.getByText('like refused: daily cap')).toBeTruthy();
  });
});

describe('UsageChart', () => {
  it('has an empty state and draws one point per sample', () => {
    const { rerender } = render(<UsageChart samples={[]} cpuLimit={1} memLimit={1 << 30} />);
    expect(screen.getByText(/No usage samples yet/)).toBeTruthy();
    rerender(<UsageChart samples={[{ t: 1, cpu: 10, mem: 1 << 20 }, { t: 2, cpu: 50, mem: 2 << 20 }, { t: 3, cpu: 5, mem: 3 << 20 }]} cpuLimit={1} memLimit={1 << 30} />);
    expect(screen.getByTestId('cpu-line').getAttribute('points')!.split(' ')).toHaveLength(3);
    expect(screen.getByText('CPU 5.0% of 100%')).toBeTruthy();
    expect(screen.getByText(/Memory 3.0 MiB of 1.0 GiB/)).toBeTruthy();
  });
});

describe('ConfirmButton', () => {
  it('asks first, then acts; Cancel and Escape do nothing', async () => {
    const fn = vi.fn();
    render(<ConfirmButton label="Stop" question="Stop it?" onConfirm={fn} />);
    fireEvent.click(screen.getByText('Stop'));
    expect(screen.getByText('Stop it?')).toBeTruthy();
    expect(document.activeElement?.textContent).toBe('Yes, stop');
    fireEvent.click(screen.getByText('Cancel'));
    expect(fn).not.toHaveBeenCalled();
    fireEvent.click(screen.getByText('Stop'));
    fireEvent.keyDown(screen.getByText('Stop it?'), { key: 'Escape' });
    expect(screen.queryByText('Stop it?')).toBeNull();
    fireEvent.click(screen.getByText('Stop'));
    await act(async () => fireEvent.click(screen.getByText('Yes, stop')));
    expect(fn).toHaveBeenCalledOnce();
  });
});

describe('formatBytes', () => {
  it('uses binary units', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(3 << 20)).toBe('3.0 MiB');
    expect(formatBytes(2 * 1024 ** 3)).toBe('2.0 GiB');
  });
});

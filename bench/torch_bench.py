"""bench/torch_bench.py: PyTorch's side of bench/timing.h, the batch timer the benchmarks share."""

import time


def time_batches(step, warmup, reps):
    """Runs step() `warmup` times untimed, then reps (at least 5) times in 5 batches of reps // 5.

    Returns the fastest batch's and the median batch's wall milliseconds per step and the fastest
    batch's process CPU milliseconds per step (all threads), rounded as the JSON lines print them.
    """
    n = max(reps // 5, 1)
    for _ in range(warmup):
        step()
    times, cpu = [], []
    for _ in range(5):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            step()
        cpu.append((time.process_time() - c0) / n)
        times.append((time.perf_counter() - t0) / n)
    times.sort()
    cpu.sort()
    return {'ms': round(1e3 * times[0], 4), 'median_ms': round(1e3 * times[2], 4),
            'cpu_ms': round(1e3 * cpu[0], 4)}

//! CPU time for benchmarks on a shared machine: how much a process (all its threads) and the
//! whole machine used, so a bench can print CPU per operation next to throughput — the figure
//! that does not depend on how much CPU the scheduler happened to grant.

use std::time::{Duration, Instant};

/// A measurement window on a shared machine: the CPU clocks of this process, of one other
/// process (a daemon under test, if any) and of the whole machine, read at its start.
#[derive(Debug)]
pub struct Window {
    start: Instant,
    me: Duration,
    other: Option<(String, Duration)>,
    machine: Duration,
}

/// What a [`Window`] measured, in seconds.
#[derive(Clone, Copy, Debug)]
pub struct Spent {
    pub wall: f64,
    /// CPU of this process's live threads.
    pub me: f64,
    /// CPU of the other process (0 without one).
    pub other: f64,
    /// CPU of every other process on the machine (noise), at 10 ms resolution.
    pub others: f64,
}

impl Window {
    /// Start a window; `other_pid` is a process whose CPU to count apart.
    pub fn start(other_pid: Option<&str>) -> Window {
        Window {
            me: process_cpu("self"),
            other: other_pid.map(|pid| (pid.to_owned(), process_cpu(pid))),
            machine: machine_busy(),
            start: Instant::now(),
        }
    }

    /// Time since the window started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// End the window (while the threads that worked in it are still alive: ended threads
    /// are not counted).
    pub fn stop(&self) -> Spent {
        let wall = self.start.elapsed().as_secs_f64();
        let me = process_cpu("self").saturating_sub(self.me).as_secs_f64();
        let other = self.other.as_ref().map_or(0.0, |(pid, at)| {
            process_cpu(pid).saturating_sub(*at).as_secs_f64()
        });
        let machine = machine_busy().saturating_sub(self.machine).as_secs_f64();
        Spent {
            wall,
            me,
            other,
            others: (machine - me - other).max(0.0),
        }
    }
}

/// CPU time the live threads of process `pid` ("self" for this one) have used so far: the
/// sum of each thread's on-CPU nanoseconds in `/proc/PID/task/*/schedstat` (exact, where
/// `/proc/PID/stat` counts 10 ms ticks). Threads that already ended are not counted: read a
/// window's ends while its threads run.
pub fn process_cpu(pid: &str) -> Duration {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    let nanos: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(nanos)
}

/// CPU time of this process's children that ended and were waited for (`cutime` + `cstime`
/// of `/proc/self/stat`, 10 ms ticks): a load generator run as a child, read before and after.
pub fn children_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which may hold spaces) in its parentheses.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let ticks: u64 = rest
        .split_whitespace()
        .skip(13) // state … stime: cutime is field 16 of the line, the 14th after ')'
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// CPU time all processes on the machine used so far (the `cpu` line of `/proc/stat`: every
/// field but idle and iowait, in 10 ms ticks).
pub fn machine_busy() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let busy: u64 = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse::<u64>().ok())
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    Duration::from_millis(busy * 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_and_the_machine_use_cpu_while_spinning() {
        let (me, all) = (process_cpu("self"), machine_busy());
        let t0 = std::time::Instant::now();
        let mut x = 0u64;
        while t0.elapsed() < Duration::from_millis(100) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(process_cpu("self") - me >= Duration::from_millis(50));
        assert!(machine_busy() > all);
    }

    #[test]
    fn a_window_counts_this_process_and_another_apart() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap();
        let pid = child.id().to_string();
        let window = Window::start(Some(&pid));
        // Spin until both have had CPU (however little the scheduler grants), at most 10 s.
        let mut x = 0u64;
        let mut spent = window.stop();
        while (spent.me < 0.05 || spent.other < 0.01) && window.elapsed() < Duration::from_secs(10)
        {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            spent = window.stop();
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(spent.me >= 0.05 && spent.other >= 0.01, "{spent:?}");
    }

    #[test]
    fn a_waited_for_child_counts_in_children_cpu() {
        let before = children_cpu();
        let status = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"])
            .status()
            .unwrap();
        assert!(status.success());
        assert!(children_cpu() > before);
    }
}

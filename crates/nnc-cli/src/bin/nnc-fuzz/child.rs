//! Running one `nnc` command as a child process under a memory cap and a time limit, and
//! classifying how it ended.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How one command (or case) ended, from best to worst.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Exit 0, or 3 (outputs outside a comparison's tolerance: a result, not a failure).
    Ok,
    /// Exit 1 or 2 with one `error:` line: the input was refused with a message.
    CleanError,
    /// The process ran out of the memory it was allowed: an allocation that aborted the
    /// process (it should have been a fallible one) or the kernel's out-of-memory killer.
    OverMemory(String),
    /// Killed at the time limit.
    Timeout,
    /// A panic, a signal, or an error exit without an `error:` line: a bug.
    Crash(String),
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::CleanError => "clean error",
            Outcome::OverMemory(_) => "over memory",
            Outcome::Timeout => "timeout",
            Outcome::Crash(_) => "crash",
        }
    }

    /// Whether this outcome is a bug to report (a crash, a hang, or memory exhausted).
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Crash(_) | Outcome::Timeout | Outcome::OverMemory(_))
    }
}

/// What one run of a command gave.
#[derive(Clone, Debug)]
pub struct Ran {
    pub outcome: Outcome,
    /// The child's peak resident memory in KiB.
    pub peak_kib: u64,
    /// The last line it printed on stderr.
    pub last_error: String,
}

/// Limits of every child.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Address space, in bytes (`RLIMIT_AS`).
    pub memory_bytes: u64,
    pub timeout: Duration,
}

/// Runs `program args` in `dir` with `limits`, stdout and stderr to files in `dir`, and
/// classifies the end.
pub fn run(program: &Path, args: &[String], dir: &Path, limits: Limits) -> std::io::Result<Ran> {
    let stdout = std::fs::File::create(dir.join("stdout.txt"))?;
    let stderr_path = dir.join("stderr.txt");
    let stderr = std::fs::File::create(&stderr_path)?;
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .env_remove("RUST_BACKTRACE")
        .env("NODEVICE_SELECT", "1");
    let memory = limits.memory_bytes;
    // SAFETY: only async-signal-safe calls (setrlimit) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            let cap = libc::rlimit { rlim_cur: memory, rlim_max: memory };
            let none = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            if libc::setrlimit(libc::RLIMIT_AS, &cap) != 0 || libc::setrlimit(libc::RLIMIT_CORE, &none) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let start = Instant::now();
    let child = command.spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut killed = false;
    loop {
        // SAFETY: waits for our own child, writing into the locals given.
        let done = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if done == pid {
            break;
        }
        if done < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if !killed && start.elapsed() > limits.timeout {
            // SAFETY: signals our own child, which has not been waited for yet.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let stderr_text = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let outcome = classify(status, killed, &stderr_text);
    let last_error = stderr_text.lines().last().unwrap_or_default().to_string();
    Ok(Ran { outcome, peak_kib: usage.ru_maxrss.max(0) as u64, last_error })
}

/// How a process that ended with wait `status` went.
fn classify(status: i32, killed_for_time: bool, stderr: &str) -> Outcome {
    let tail = || stderr.lines().rev().take(3).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join(" | ");
    if libc::WIFEXITED(status) {
        return match libc::WEXITSTATUS(status) {
            0 | 3 => Outcome::Ok,
            1 | 2 => {
                let errors = stderr.lines().filter(|l| l.starts_with("error: ")).count();
                if stderr.contains("internal error") || stderr.contains("panicked") {
                    Outcome::Crash(format!("internal error: {}", tail()))
                } else if errors == 0 {
                    Outcome::Crash(format!("an error exit without an `error:` line: {}", tail()))
                } else {
                    Outcome::CleanError
                }
            }
            101 => Outcome::Crash(format!("panic: {}", tail())),
            code => Outcome::Crash(format!("exit {code}: {}", tail())),
        };
    }
    let signal = if libc::WIFSIGNALED(status) { libc::WTERMSIG(status) } else { 0 };
    let memory_words = ["memory allocation of", "bad_alloc", "out of memory", "Cannot allocate memory"];
    match signal {
        libc::SIGKILL if killed_for_time => Outcome::Timeout,
        libc::SIGKILL => Outcome::OverMemory(format!("killed (out-of-memory killer?): {}", tail())),
        libc::SIGABRT if memory_words.iter().any(|w| stderr.contains(w)) => Outcome::OverMemory(tail()),
        s => Outcome::Crash(format!("signal {s} ({}): {}", signal_name(s), tail())),
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: i32) -> i32 {
        code << 8
    }

    #[test]
    fn outcomes_are_classified() {
        assert_eq!(classify(exit(0), false, ""), Outcome::Ok);
        assert_eq!(classify(exit(3), false, "summary: FAIL"), Outcome::Ok);
        assert_eq!(classify(exit(1), false, "warning: x\nerror: bad file\n"), Outcome::CleanError);
        assert!(matches!(classify(exit(1), false, "nothing said\n"), Outcome::Crash(_)));
        assert!(matches!(classify(exit(101), false, "error: internal error in nnc"), Outcome::Crash(_)));
        assert_eq!(classify(libc::SIGKILL, true, ""), Outcome::Timeout);
        assert!(matches!(
            classify(libc::SIGABRT, false, "memory allocation of 8 bytes failed"),
            Outcome::OverMemory(_)
        ));
        assert!(matches!(classify(libc::SIGSEGV, false, ""), Outcome::Crash(m) if m.contains("SIGSEGV")));
        assert!(Outcome::Crash(String::new()) > Outcome::Timeout && Outcome::Timeout > Outcome::CleanError);
    }
}

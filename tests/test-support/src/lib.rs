//! Running the project's binaries in tests, shared by the test crates of
//! the services and of the root package: a process whose log is read line
//! by line as it comes, the addresses it logs, and how it exits. Also the
//! synthetic streams the benchmarks and examples build graphs of
//! ([`synthetic`]), and a simulated fleet of Zincati nodes polling a
//! policy-engine during a rollout ([`fleet`]).

pub mod fleet;
pub mod synthetic;

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running binary whose standard error is read line by line as it
/// comes; killed when the test ends, however it ends.
#[derive(Debug)]
pub struct Process {
    /// The process.
    pub child: Child,
    lines: mpsc::Receiver<String>,
    /// Every line read so far.
    log: Vec<String>,
}

impl Process {
    /// Starts `command` with its standard error read.
    pub fn spawn(command: &mut Command) -> Process {
        let mut child = command.stderr(Stdio::piped()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Process {
            child,
            lines,
            log: Vec::new(),
        }
    }

    /// The first line containing `text`, waiting for it up to 15 s.
    pub async fn line_with(&mut self, text: &str) -> String {
        if let Some(line) = self.log.iter().find(|l| l.contains(text)) {
            return line.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            while let Ok(line) = self.lines.try_recv() {
                self.log.push(line.clone());
                if line.contains(text) {
                    return line;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no line with {text:?} within 15 s; standard error so far:\n{}",
                self.log.join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every line read so far, for messages.
    pub fn log(&self) -> String {
        self.log.join("\n")
    }

    /// A memory figure of `/proc/PID/status` (`VmRSS`, `VmHWM`), in bytes.
    pub fn memory(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {field} in {status}"))
            * 1024
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address logged as `name=…` in a log line.
pub fn logged_addr(line: &str, name: &str) -> SocketAddr {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(name)?.strip_prefix('='))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {line:?}"))
}

/// Runs `command` until it exits and returns how, with its standard error;
/// fails if it is still running after 10 s (a service that should refuse
/// to start).
pub fn run_until_exit(command: &mut Command) -> (ExitStatus, String) {
    let mut child = command.stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running after 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}

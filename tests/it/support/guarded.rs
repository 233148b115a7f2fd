//! `Guarded`: every process the tests spawn (mariadbd, redis-server, haproxy, gateway
//! nodes) dies with the test process: `sh` runs it in the background and kills it when its
//! stdin (held by us) closes, even when the test panics. Dropping the handle kills it too.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

/// A spawned process under a watchdog shell.
pub struct Guarded {
    shell: Option<Child>,
    stdin: Option<ChildStdin>,
    pid: u32,
}

/// How to start a guarded process beyond its program and arguments.
#[derive(Default)]
pub struct Spawn<'a> {
    /// Environment variables for the process.
    pub env: &'a [(String, String)],
    /// A shell command run before the program, in the same shell (such as `ulimit -Sn 256`,
    /// which the program then inherits).
    pub setup: Option<&'a str>,
}

impl Guarded {
    /// Starts `program args…` with output to `log`.
    pub fn spawn(program: &Path, args: &[String], log: &Path) -> Guarded {
        Guarded::spawn_with(program, args, log, Spawn::default())
    }

    /// Starts `program args…` with output to `log`, as `spawn` says.
    pub fn spawn_with(program: &Path, args: &[String], log: &Path, spawn: Spawn) -> Guarded {
        let mut command = format!("'{}'", program.display());
        for arg in args {
            command.push_str(&format!(" '{}'", arg.replace('\'', r"'\''")));
        }
        let setup = spawn.setup.map(|s| format!("{s}; ")).unwrap_or_default();
        // fd 3 is our pipe: the shell reports the program's pid on it, the program does not
        // inherit it. The line read from stdin names the signal to stop it with (9 if empty).
        let script = format!(
            "exec 3>&1 >>'{log}' 2>&1; {setup}{command} 3>&- & pid=$!\necho $pid >&3\nexec 3>&-\n\
             read sig\nkill -${{sig:-9}} $pid 2>/dev/null\nwait $pid 2>/dev/null\n",
            log = log.display()
        );
        let mut shell = Command::new("sh")
            .arg("-c")
            .arg(script)
            .envs(spawn.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning sh for {}: {e}", program.display()));
        let stdin = shell.stdin.take();
        let mut line = String::new();
        BufReader::new(shell.stdout.take().expect("the shell's stdout"))
            .read_line(&mut line)
            .expect("reading the pid");
        let pid = line.trim().parse().expect("the program's pid");
        Guarded {
            shell: Some(shell),
            stdin,
            pid,
        }
    }

    /// The process id of the program (not of its watchdog shell).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `signal` (such as `KILL` or `TERM`) and waits for the process to exit.
    pub fn signal(&mut self, signal: &str) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "{signal}");
        }
        if let Some(mut shell) = self.shell.take() {
            let _ = shell.wait();
        }
    }

    /// Freezes the process (SIGSTOP) until `resume`: it keeps its sockets and answers
    /// nothing, as a hung server does.
    pub fn pause(&self) {
        self.raw_signal("STOP");
    }

    /// Lets a paused process run again (SIGCONT).
    pub fn resume(&self) {
        self.raw_signal("CONT");
    }

    fn raw_signal(&self, signal: &str) {
        if self.is_stopped() {
            return;
        }
        let _ = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid.to_string())
            .status();
    }

    /// Kills the process (SIGKILL) and waits for it to be gone.
    pub fn kill(&mut self) {
        self.signal("KILL");
    }

    /// Whether the process was stopped.
    pub fn is_stopped(&self) -> bool {
        self.shell.is_none()
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.kill();
    }
}

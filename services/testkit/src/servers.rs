//! Private servers for tests that stop, freeze or break theirs: `nats-server` with JetStream and
//! SecantusDB (MongoDB's wire protocol) on free ports, never the shared ones other tests use.
//! (PostgreSQL: [`crate::private_postgres`].)

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::env::{free_port, wait_for_port};

/// A private SecantusDB (MongoDB-wire-compatible) server for tests that stop their MongoDB.
pub struct PrivateMongo {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

fn secantusd() -> PathBuf {
    if let Ok(path) = std::env::var("BEACON_SECANTUSD") {
        return PathBuf::from(path);
    }
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.services/venv/bin/secantusd-py");
    assert!(
        path.exists(),
        "SecantusDB not installed at {} (scripts/services up installs it)",
        path.display()
    );
    path
}

impl PrivateMongo {
    pub fn start() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("beacon-mongo-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("storage dir");
        let mut mongo = Self {
            port,
            dir,
            child: None,
        };
        mongo.resume();
        mongo
    }

    pub fn url(&self) -> String {
        format!(
            "mongodb://127.0.0.1:{}/?directConnection=true&serverSelectionTimeoutMS=2000",
            self.port
        )
    }

    /// Starts (again) on the same port and storage.
    pub fn resume(&mut self) {
        let log = std::fs::File::create(self.dir.with_extension("log")).expect("log");
        let child = Command::new(secantusd())
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--storage-path",
            ])
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone"))
            .stderr(log)
            .spawn()
            .expect("start SecantusDB");
        self.child = Some(child);
        wait_for_port(self.port, "SecantusDB", Duration::from_secs(30));
    }

    /// Stops the server (SIGTERM, then waits).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateMongo {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A private `nats-server` with JetStream for tests that stop their broker.
pub struct PrivateNats {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl PrivateNats {
    pub fn start() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("beacon-nats-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("store dir");
        let mut nats = Self {
            port,
            dir,
            child: None,
        };
        nats.resume();
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn resume(&mut self) {
        let child = Command::new("nats-server")
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server must be installed (scripts/services installs it)");
        self.child = Some(child);
        wait_for_port(self.port, "nats-server", Duration::from_secs(10));
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the server keeps its connections open but answers nothing (a stalled broker).
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`Self::freeze`]: it processes what queued up meanwhile.
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("nats-server runs");
        let status = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} nats-server");
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

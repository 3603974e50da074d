//! A throwaway PostgreSQL cluster on a free port, for tests that stop or restart their database
//! (never the shared server other tests use).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::env::{free_port, wait_for_port};

pub struct PrivatePostgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    running: bool,
}

/// The newest installed server's `bin` directory (Debian keeps them per major version).
fn server_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| {
            dirs.filter_map(Result::ok)
                .map(|d| d.path().join("bin"))
                .filter(|bin| bin.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(Path::file_name)
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop().expect(
        "no PostgreSQL server binaries under /usr/lib/postgresql (scripts/services installs them)",
    )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl PrivatePostgres {
    pub fn start() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("beacon-pg-{port}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cluster dir");
        if is_root() {
            // PostgreSQL refuses to run as root: the cluster belongs to the postgres user.
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .expect("chown");
            assert!(status.success(), "chown of {}", dir.display());
        }
        let mut pg = Self {
            port,
            dir,
            bin: server_bin(),
            running: false,
        };
        let data = pg.data_dir();
        pg.run(
            "initdb",
            &["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        );
        pg.resume();
        pg
    }

    fn data_dir(&self) -> String {
        self.dir.join("data").to_string_lossy().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let program = self.bin.join(tool);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let output = command
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(
            output.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts (again) and waits until it accepts connections.
    pub fn resume(&mut self) {
        let data = self.data_dir();
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=100",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log").to_string_lossy().to_string();
        self.run(
            "pg_ctl",
            &["-D", &data, "-o", &options, "-l", &log, "-w", "start"],
        );
        self.running = true;
        wait_for_port(self.port, "PostgreSQL", Duration::from_secs(30));
    }

    /// Stops at once, as a crash would: no checkpoint, open connections cut.
    pub fn stop(&mut self) {
        if self.running {
            let data = self.data_dir();
            self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
            self.running = false;
        }
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

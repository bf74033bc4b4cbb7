//! A throwaway PostgreSQL 15 server for tests: initdb as the `postgres` user, our own
//! port and pg_hba.conf, stopped and removed on drop (also when a check panics).

#![allow(dead_code)]

use std::net::TcpStream as StdTcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, ensure, Context, Result};
use rolegate::auth::Secret;

pub const BIN: &str = "/usr/lib/postgresql/15/bin";

/// Whether PostgreSQL 15 is installed (tests skip, saying so, when it is not).
pub fn available() -> bool {
    Path::new(BIN).join("postgres").exists()
}

/// True, after saying the test is skipped, when PostgreSQL 15 is not installed.
pub fn missing() -> bool {
    let missing = !available();
    if missing {
        eprintln!("skipped: no PostgreSQL 15 in {BIN}");
    }
    missing
}

pub struct Pg {
    pub port: u16,
    dir: PathBuf,
    ids: (u32, u32),
}

impl Pg {
    /// Starts a server on 127.0.0.1:`port` with `hba` as pg_hba.conf and
    /// `password_encryption = 'scram-sha-256'`, then runs `setup` as superuser.
    pub fn start(port: u16, hba: &str, setup: &str) -> Result<Self> {
        ensure!(
            StdTcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} is taken (a server left over from an earlier run?)"
        );
        let ids = (id("-u")?, id("-g")?);
        let dir = std::env::temp_dir().join(format!("rolegate-pg-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        std::os::unix::fs::chown(&dir, Some(ids.0), Some(ids.1))?;
        let pg = Self { port, dir, ids };
        let data = pg.data();
        pg.run(
            "initdb",
            &["-D", &data, "-U", "postgres", "-A", "trust", "--no-sync"],
        )?;
        let conf = format!(
            "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             password_encryption = 'scram-sha-256'\nfsync = off\n",
            pg.dir.display()
        );
        append(&Path::new(&data).join("postgresql.conf"), &conf)?;
        std::fs::write(Path::new(&data).join("pg_hba.conf"), hba)?;
        let log = pg.dir.join("log").display().to_string();
        pg.run("pg_ctl", &["start", "-w", "-D", &data, "-l", &log])?;
        pg.psql(setup)?;
        Ok(pg)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// A directory for the test's own files, removed with the server.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs a PostgreSQL binary as the postgres user.
    fn run(&self, bin: &str, args: &[&str]) -> Result<String> {
        let out = Command::new(Path::new(BIN).join(bin))
            .args(args)
            .uid(self.ids.0)
            .gid(self.ids.1)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("run {bin}"))?;
        if !out.status.success() {
            bail!("{bin} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// One psql command as superuser over the Unix socket; trimmed unaligned output.
    pub fn psql(&self, sql: &str) -> Result<String> {
        let conninfo = format!(
            "host={} port={} user=postgres",
            self.dir.display(),
            self.port
        );
        let out = Command::new("/usr/bin/psql")
            .args([
                "-X",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &conninfo,
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(out.status.success(), "psql: {stderr}");
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// The user's `pg_authid.rolpassword`, parsed as an auth_file secret.
    pub fn stored_secret(&self, user: &str) -> Result<Secret> {
        let text = self.psql(&format!(
            "SELECT rolpassword FROM pg_authid WHERE rolname = '{user}'"
        ))?;
        Ok(Secret::parse(&text)?)
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = self.run("pg_ctl", &["stop", "-m", "immediate", "-D", &self.data()]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn id(flag: &str) -> Result<u32> {
    let out = Command::new("id").args([flag, "postgres"]).output()?;
    Ok(String::from_utf8(out.stdout)?.trim().parse()?)
}

fn append(path: &Path, text: &str) -> Result<()> {
    let mut conf = std::fs::read_to_string(path)?;
    conf.push_str(text);
    Ok(std::fs::write(path, conf)?)
}

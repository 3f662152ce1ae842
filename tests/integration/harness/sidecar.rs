//! Sidecars under test: the built `s3torrent` binary with a configuration made by a typed
//! builder ([`SidecarBuilder`]) over the base configuration every test starts from.

use std::path::{Path, PathBuf};
use std::process::Command;

use toml::{Table, Value};

use super::*;

/// The base configuration, as TOML text: the sidecar on `port` (admin on `admin_port`) in
/// front of `127.0.0.1:{s3_port}`, with every test identity known to it.
pub fn sidecar_config(s3_port: u16, region: &str, port: u16, admin_port: u16) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
domains = ["{DOMAIN}"]
threads = 2

[admin]
listen = "127.0.0.1:{admin_port}"

[upstream]
endpoint = "http://127.0.0.1:{s3_port}"
region = "{region}"
access_key_id = "{ak}"
secret_access_key = "{sk}"
timeout_secs = 20

[[auth.credentials]]
access_key_id = "{rk}"
secret_access_key = "{rs}"

[[auth.credentials]]
access_key_id = "{nk}"
secret_access_key = "{ns}"

[[auth.credentials]]
access_key_id = "{ak}"
secret_access_key = "{sk}"

[torrent]
max_object_size = 67108864

# Every test peer dials from loopback: one address.
[seeder]
max_peers_per_address = 1000
"#,
        ak = ADMIN.0,
        sk = ADMIN.1,
        rk = READER.0,
        rs = READER.1,
        nk = NOREAD.0,
        ns = NOREAD.1,
    )
}

pub struct Sidecar {
    pub port: u16,
    pub admin_port: u16,
    pub pid: u32,
    /// Where it logs (stderr).
    pub log: PathBuf,
}

/// Another sidecar, configured setting by setting:
/// `sidecar("name").set("seeder.enabled", true).start()`.
pub struct SidecarBuilder<'a> {
    env: &'a Env,
    name: String,
    port: u16,
    admin_port: u16,
    config: Table,
    level: &'static str,
    vars: Vec<(String, String)>,
}

/// A sidecar in front of the SeaweedFS backend.
pub fn sidecar(name: &str) -> SidecarBuilder<'static> {
    SidecarBuilder::on(env(), name)
}

impl<'a> SidecarBuilder<'a> {
    /// A sidecar in front of `env`'s backend, on ports of its own.
    pub fn on(env: &'a Env, name: &str) -> Self {
        let [port, admin_port] = free_ports(2)[..] else {
            unreachable!()
        };
        let text = sidecar_config(env.s3_port, env.region, port, admin_port);
        register_region(port, env.region);
        SidecarBuilder {
            env,
            name: name.to_string(),
            port,
            admin_port,
            config: text.parse().expect("the base configuration is TOML"),
            level: "warn",
            vars: Vec::new(),
        }
    }

    /// The port it will listen on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:{port}`: where it will listen, for settings that name it.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sets `section.key` (or `section.sub.key`) to `value`, creating tables on the way.
    pub fn set(mut self, path: &str, value: impl Into<Value>) -> Self {
        let (tables, key) = path.rsplit_once('.').expect("a `section.key` path");
        let mut table = &mut self.config;
        for name in tables.split('.') {
            table = table
                .entry(name)
                .or_insert_with(|| Value::Table(Table::new()))
                .as_table_mut()
                .unwrap_or_else(|| panic!("{name} is not a table"));
        }
        table.insert(key.to_string(), value.into());
        self
    }

    /// In front of another backend (a fake one) on `port`.
    pub fn backend_port(self, port: u16) -> Self {
        self.set("upstream.endpoint", format!("http://127.0.0.1:{port}"))
    }

    /// The sidecar's own credentials for the backend.
    pub fn upstream_credentials(self, (ak, sk): (&str, &str)) -> Self {
        self.set("upstream.access_key_id", ak)
            .set("upstream.secret_access_key", sk)
    }

    /// The built-in tracker on, announcing itself at its own URL.
    pub fn tracker(self) -> Self {
        let url = format!("{}/_s3torrent/announce", self.url());
        self.set("tracker.enabled", true)
            .set("tracker.public_url", url)
    }

    /// Public web seeds of `format` torrents (v1, hybrid, v2), naming this sidecar.
    pub fn webseeds(self, mode: &str, format: &str) -> Self {
        let base = self.url();
        self.set("torrent.webseed", mode)
            .set("torrent.public_base_url", base)
            .set("torrent.format", format)
    }

    /// Sets an environment variable of its process (what a pod learns from the downward
    /// API, say).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.vars.push((name.to_string(), value.to_string()));
        self
    }

    /// Listens on `port`, its admin listener on `admin` (chosen by the caller, e.g. already
    /// known to a balancer).
    pub fn listening_on(mut self, port: u16, admin: u16) -> Self {
        (self.port, self.admin_port) = (port, admin);
        self.set("server.listen", format!("127.0.0.1:{port}"))
            .set("admin.listen", format!("127.0.0.1:{admin}"))
    }

    /// Logs at `level` (`RUST_LOG`) instead of `warn`.
    pub fn logging(mut self, level: &'static str) -> Self {
        self.level = level;
        self
    }

    /// The configuration as it will be written.
    pub fn config_text(&self) -> String {
        toml::to_string(&self.config).expect("a TOML table")
    }

    pub fn start(self) -> Sidecar {
        let dir = self.env.scratch(&self.name);
        let config = dir.join("s3torrent.toml");
        std::fs::write(&config, self.config_text()).unwrap();
        let log = dir.join("sidecar.log");
        let pid = start_sidecar_with(&config, &log, self.port, self.level, &self.vars);
        Sidecar {
            port: self.port,
            admin_port: self.admin_port,
            pid,
            log: log.with_extension("err"),
        }
    }
}

pub fn start_sidecar(config: &Path, log: &Path, port: u16) -> u32 {
    start_sidecar_logging(config, log, port, "warn")
}

/// As [`start_sidecar`], logging at `level` (to `log` with extension `err`).
pub fn start_sidecar_logging(config: &Path, log: &Path, port: u16, level: &str) -> u32 {
    start_sidecar_with(config, log, port, level, &[])
}

fn start_sidecar_with(
    config: &Path,
    log: &Path,
    port: u16,
    level: &str,
    vars: &[(String, String)],
) -> u32 {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_s3torrent"));
    cmd.arg("--config")
        .arg(config)
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .env("RUST_LOG", level)
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(std::fs::File::create(log.with_extension("err")).unwrap());
    let child = spawn_guarded(cmd);
    let pid = child.id();
    register_child(child);
    wait_for_port(port, "s3torrent", &log.with_extension("err"));
    pid
}

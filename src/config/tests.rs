//! Configuration parsing and validation, end to end from TOML text.

use super::upstream::parse_endpoint;
use super::*;
use crate::torrent::PieceLength;

const MINIMAL: &str = r#"
[upstream]
endpoint = "http://127.0.0.1:9000"
access_key_id = "AK"
secret_access_key = "SK"
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, |_| None)
}

#[test]
fn minimal_config_gets_defaults() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.admin.listen.to_string(), "127.0.0.1:9090");
    assert_eq!(c.upstream.region, "us-east-1");
    assert_eq!(c.torrent.piece_length, PieceLength::Auto);
    assert_eq!(c.torrent.max_object_size, 5_368_709_120);
    assert_eq!(c.upstream.endpoint.authority(), "127.0.0.1:9000");
}

#[test]
fn shipped_config_is_valid() {
    let text = include_str!("../../config/s3torrent.toml");
    parse(text).unwrap();
}

#[test]
fn errors_name_the_key_and_line() {
    let text = format!("{MINIMAL}\n[torrent]\npiece_length = 1000\n");
    let e = parse(&text).unwrap_err().0;
    assert!(e.contains("line 8"), "{e}");
    assert!(e.contains("piece_length"), "{e}");

    let e = parse(&format!("{MINIMAL}\n[server]\nlisten = \"nope\"\n"))
        .unwrap_err()
        .0;
    assert!(e.contains("line 8") && e.contains("listen"), "{e}");

    let e = parse(&format!("{MINIMAL}\n[server]\nlisten_addr = 1\n"))
        .unwrap_err()
        .0;
    assert!(e.contains("unknown field `listen_addr`"), "{e}");

    let e = parse(&MINIMAL.replace("http://", "ftp://")).unwrap_err().0;
    assert!(e.contains("endpoint") && e.contains("line 3"), "{e}");
}

#[test]
fn secrets_from_env_override_and_missing_ones_are_named() {
    let text = "[upstream]\nendpoint = \"http://h:1\"\n";
    let e = parse(text).unwrap_err().0;
    assert!(e.contains("upstream.access_key_id"), "{e}");
    let c = Config::from_toml(text, |k| Some(format!("from-env-{k}"))).unwrap();
    assert_eq!(
        c.upstream.secret_access_key.expose(),
        format!("from-env-{ENV_UPSTREAM_SECRET_ACCESS_KEY}")
    );
}

#[test]
fn secrets_from_files_and_env() {
    let dir = std::env::temp_dir().join(format!("s3t-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("sk"), "from-file\n").unwrap();
    let text = format!(
        "[upstream]\nendpoint = \"http://h:1\"\naccess_key_id = \"AK\"\nsecret_access_key_file = \"{0}/sk\"\n\
         [[auth.credentials]]\naccess_key_id = \"C1\"\nsecret_access_key_file = \"{0}/sk\"\n\
         [[auth.credentials]]\naccess_key_id = \"C2\"\nsecret_access_key_env = \"C2_SECRET\"\n",
        dir.display()
    );
    let env = |k: &str| (k == "C2_SECRET").then(|| "from-env".to_string());
    let c = Config::from_toml(&text, env).unwrap();
    assert_eq!(c.upstream.secret_access_key.expose(), "from-file");
    assert_eq!(
        c.auth.credentials[0].secret_access_key.expose(),
        "from-file"
    );
    assert_eq!(c.auth.credentials[1].secret_access_key.expose(), "from-env");

    let e = Config::from_toml(&text, |_| None).unwrap_err().0;
    assert!(
        e.contains("auth.credentials[1].secret_access_key_env"),
        "{e}"
    );
    let e = parse(&text.replace("/sk", "/missing")).unwrap_err().0;
    assert!(
        e.contains("upstream.secret_access_key_file") && e.contains("missing"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn endpoint_forms() {
    assert_eq!(
        parse_endpoint("https://s3.example.com").unwrap(),
        Endpoint {
            tls: true,
            host: "s3.example.com".into(),
            port: 443
        }
    );
    assert_eq!(
        parse_endpoint("https://s3.example.com")
            .unwrap()
            .authority(),
        "s3.example.com"
    );
    assert!(parse_endpoint("http://h:9000/prefix").is_err());
    assert!(parse_endpoint("h:9000").is_err());
}

#[test]
fn rejects_bad_domains_trackers_and_duplicate_keys() {
    assert!(parse(&format!("{MINIMAL}[server]\ndomains = [\"http://x\"]\n")).is_err());
    assert!(parse(&format!("{MINIMAL}[torrent]\nannounce = [[\"ftp://x\"]]\n")).is_err());
    assert!(parse(&format!("{MINIMAL}[torrent]\nannounce = [[]]\n")).is_err());
    let dup = "[[auth.credentials]]\naccess_key_id = \"a\"\nsecret_access_key = \"b\"\n";
    assert!(parse(&format!("{MINIMAL}{dup}{dup}")).is_err());
}

#[test]
fn effective_config_round_trips_and_redacts_secrets() {
    let c = parse(&format!(
        "{MINIMAL}[[auth.credentials]]\naccess_key_id = \"a\"\nsecret_access_key = \"hunter2\"\n[torrent]\npiece_length = 65536\nannounce = [[\"udp://t:1\"]]\n"
    ))
    .unwrap();
    let shown = c.effective_toml();
    assert!(
        !shown.contains("hunter2") && !shown.contains("\"SK\""),
        "{shown}"
    );
    assert!(shown.contains("<redacted>"));
    // Everything else reads back as the same configuration.
    let back = Config::from_toml(&shown, |_| None).unwrap();
    assert_eq!(back.torrent, c.torrent);
    assert_eq!(back.upstream.endpoint, c.upstream.endpoint);
}

#[test]
fn debug_output_redacts_secrets() {
    let c = parse(&format!(
        "{MINIMAL}[[auth.credentials]]\naccess_key_id = \"a\"\nsecret_access_key = \"hunter2\"\n"
    ))
    .unwrap();
    assert!(!format!("{c:?}").contains("hunter2"));
    assert!(!format!("{c:?}").contains("\"SK\""));
}

#[test]
fn urls_and_durations_are_checked_where_they_stand() {
    let e = parse(&format!(
        "{MINIMAL}\n[torrent]\nwebseed = \"public\"\npublic_base_url = \"s3.example.com\"\n"
    ))
    .unwrap_err()
    .0;
    assert!(
        e.contains("line 9") && e.contains("not an http(s) URL"),
        "{e}"
    );
    let e = parse(&format!(
        "{MINIMAL}\n[tracker]\nenabled = true\npublic_url = \"/announce\"\n"
    ))
    .unwrap_err()
    .0;
    assert!(e.contains("line 9") && e.contains("public_url"), "{e}");
    let e = parse(&format!("{MINIMAL}\n[server]\ngrace_period = \"soon\"\n"))
        .unwrap_err()
        .0;
    assert!(
        e.contains("line 8") && e.contains("invalid duration"),
        "{e}"
    );
}

#[test]
fn durations_take_units_and_the_old_timeout_name_still_works() {
    let c = parse(&format!(
        "{MINIMAL}timeout_secs = 7\n[server]\ngrace_period = \"1m\"\n[torrent]\npresign_expiry = \"2h\"\n"
    ))
    .unwrap();
    assert_eq!(c.upstream.timeout.secs(), 7);
    assert_eq!(c.server.grace_period.secs(), 60);
    assert_eq!(c.torrent.presign_expiry.secs(), 7200);
    let e = parse(&format!("{MINIMAL}timeout = 0\n")).unwrap_err().0;
    assert!(e.contains("upstream.timeout"), "{e}");
}

#[test]
fn store_and_uploads() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.store.bucket, None, "off by default");
    assert!(c.uploads.hash);
    let text = format!(
        "{MINIMAL}\n[store]\nbucket = \"s3torrent-store\"\nprefix = \"t/\"\nlease = \"1m\"\n"
    );
    let c = parse(&text).unwrap();
    assert_eq!(c.store.bucket.as_deref(), Some("s3torrent-store"));
    assert_eq!((c.store.prefix.as_str(), c.store.lease.secs()), ("t/", 60));
    let bad = format!("{MINIMAL}\n[store]\nbucket = \"Not_A_Bucket\"\n");
    let e = parse(&bad).unwrap_err().0;
    assert!(e.contains("store.bucket"), "{e}");
    let short = format!("{MINIMAL}\n[store]\nbucket = \"ok-bucket\"\nlease = 1\n");
    assert!(parse(&short).unwrap_err().0.contains("store.lease"));
    let unknown = format!("{MINIMAL}\n[uploads]\nhash_everything = true\n");
    assert!(parse(&unknown).unwrap_err().0.contains("hash_everything"));
}

#[test]
fn hardening_bounds() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.uploads.max_hashers, 8);
    assert_eq!(c.store.lease_wait.secs(), 120);
    assert!(
        c.store.key.is_empty(),
        "derived from the sidecar's secret by default"
    );
    assert_eq!(c.seeder.webseed_slot_ttl.secs(), 30);
    assert_eq!(c.seeder.public_recheck.secs(), 300);
    let long = format!("{MINIMAL}\n[cache]\nrevalidate_after = \"1h\"\n");
    assert!(parse(&long)
        .unwrap_err()
        .0
        .contains("cache.revalidate_after"));
    let ok = format!("{MINIMAL}\n[cache]\nrevalidate_after = \"5m\"\n");
    assert_eq!(parse(&ok).unwrap().cache.revalidate_after.secs(), 300);
    let keyed = format!(
        "{MINIMAL}\n[store]\nbucket = \"ok-bucket\"\nkey = \"k\"\nexpected_bucket_owner = \"123456789012\"\n"
    );
    let c = parse(&keyed).unwrap();
    assert_eq!(c.store.key.expose(), "k");
    assert!(
        !c.effective_toml().contains("key = \"k\""),
        "the store key is redacted"
    );
    let spin = format!(
        "{MINIMAL}\n[seeder]\nenabled = true\nlisten = \"127.0.0.1:6999\"\npublic_recheck = 0\n"
    );
    assert!(parse(&spin)
        .unwrap_err()
        .0
        .contains("seeder.public_recheck"));
    let c = Config::from_toml(&keyed, |k| (k == ENV_STORE_KEY).then(|| "env".to_string())).unwrap();
    assert_eq!(c.store.key.expose(), "env", "the environment wins");
}

#[test]
fn a_cluster_needs_a_store_and_the_pods_ip_and_name() {
    let base = format!("{MINIMAL}\n[cluster]\nenabled = true\n");
    let e = parse(&base).unwrap_err().0;
    assert!(e.contains("store.bucket"), "{e}");
    let with_store = format!("{base}\n[store]\nbucket = \"torrents\"\n");
    let e = parse(&with_store).unwrap_err().0;
    assert!(e.contains("S3TORRENT_POD_IP"), "{e}");
    let env = |k: &str| match k {
        ENV_POD_IP => Some("10.1.2.3".to_string()),
        ENV_POD_NAME => Some("s3torrent-1".to_string()),
        _ => None,
    };
    let c = Config::from_toml(&with_store, env).unwrap();
    assert_eq!(c.cluster.pod_ip, Some("10.1.2.3".parse().unwrap()));
    assert_eq!(c.cluster.pod_name, "s3torrent-1");
    let bad_ip = |k: &str| (k == ENV_POD_IP).then(|| "not-an-ip".to_string());
    let e = Config::from_toml(&with_store, bad_ip).unwrap_err().0;
    assert!(e.contains("S3TORRENT_POD_IP"), "{e}");
    // Off, the pod's environment is not read at all.
    assert!(Config::from_toml(MINIMAL, bad_ip).is_ok());
}

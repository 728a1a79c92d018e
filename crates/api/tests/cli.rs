//! The `passerelle` binary as an operator runs it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step must stop the test loudly

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use passerelle_adapters::testing::TestDatabase;
use passerelle_adapters::Backend;

const SECRET: &str = "cli-test-secret-cli-test-secret-0123456789";

fn passerelle(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_passerelle"));
    cmd.env_clear().current_dir(dir).env("PASSERELLE_LOG", "warn");
    cmd
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("passerelle-cli-{name}-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run passerelle")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_ready(port: u16) -> reqwest::Response {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    for _ in 0..100 {
        if let Ok(r) = client.get(format!("http://127.0.0.1:{port}/health/ready")).send().await {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the service did not start on port {port}");
}

#[test]
fn openapi_matches_the_committed_document() {
    let out = run(passerelle(&std::env::temp_dir()).arg("openapi"));
    assert!(out.status.success());
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi/openapi.json")).unwrap();
    assert!(
        String::from_utf8(out.stdout).unwrap() == committed,
        "openapi/openapi.json is stale: run `cargo run -p passerelle-api -- openapi > openapi/openapi.json`"
    );
}

/// A reader that stops early (`| head`) ends the output, not the command: no panic, success.
#[test]
fn output_cut_short_is_no_failure() {
    use std::io::Read;
    let mut child = passerelle(&std::env::temp_dir())
        .arg("openapi")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn token_mints_a_verifiable_dev_token() {
    let dir = temp_dir("token");
    let out = run(passerelle(&dir).env("PASSERELLE_JWT_HS256_SECRET", SECRET).args([
        "token",
        "--org",
        "mut-tsevie",
        "--scope",
        "registry:read audit:read",
        "--ttl",
        "2h",
    ]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&["passerelle"]);
    validation.set_issuer(&["passerelle"]);
    let data = jsonwebtoken::decode::<serde_json::Value>(
        token.trim(),
        &jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()),
        &validation,
    )
    .unwrap();
    assert_eq!(data.claims["org"], "mut-tsevie");
    assert_eq!(data.claims["scope"], "registry:read audit:read");
    assert_eq!(
        data.claims["exp"].as_i64().unwrap() - data.claims["iat"].as_i64().unwrap(),
        7200
    );

    let out = run(passerelle(&dir).args(["token", "--org", "x", "--scope", "admin"]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("PASSERELLE_JWT_HS256_SECRET"));
    // A duration it cannot read is a command line to mend, as the argument parser's refusals.
    let out = run(passerelle(&dir)
        .env("PASSERELLE_JWT_HS256_SECRET", SECRET)
        .args(["token", "--org", "x", "--ttl", "5y"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("command line error: --ttl"));
    // An organisation id the service cannot know is signed, but said.
    for org in ["", "Mut Tsevie"] {
        let out = run(passerelle(&dir)
            .env("PASSERELLE_JWT_HS256_SECRET", SECRET)
            .args(["token", "--org", org]));
        assert!(out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("is no organisation id"),
            "{org:?}"
        );
    }
    let out = run(passerelle(&dir)
        .env("PASSERELLE_JWT_HS256_SECRET", SECRET)
        .args(["token", "--org", "mut-tsevie"]));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_bad_setting_stops_the_start_with_one_line_naming_it() {
    let dir = temp_dir("badconfig");
    for (key, value) in [
        ("PASSERELLE_LISTEN", "everywhere"),
        ("PASSERELLE_DATABASE_URL", "mysql://db"),
        ("PASSERELLE_OPERATOR_ORG", "Not A Slug"),
        ("PASSERELLE_REQUEST_TIMEOUT_MS", "-5"),
        // A misspelt level silenced the service whole; a malformed URL was told as an outage.
        ("PASSERELLE_LOG", "inof"),
        ("PASSERELLE_DATABASE_URL", "postgres://db:port/passerelle"),
    ] {
        let out = run(passerelle(&dir).env(key, value).arg("serve"));
        assert_eq!(out.status.code(), Some(2), "{key}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with(&format!("configuration error: {key}: ")), "{stderr}");
    }
    std::fs::write(dir.join("passerelle.toml"), "listen = 8080\n").unwrap();
    let out = run(passerelle(&dir).args(["--config", "passerelle.toml", "serve"]));
    assert_eq!(out.status.code(), Some(2));
    // Named as the file spells it: the operator set no variable.
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("configuration error: listen (in the --config file): "));
    assert!(!dir.join("passerelle.db").exists(), "nothing was created");
    let _ = std::fs::remove_dir_all(dir);
}

/// A port already taken stops the start before any worker runs or the demo says anything.
#[test]
fn a_taken_port_stops_the_start_before_anything_runs() {
    let dir = temp_dir("taken");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = run(passerelle(&dir)
        .env("PASSERELLE_LISTEN", format!("127.0.0.1:{port}"))
        .args(["serve", "--demo"]));
    assert!(!out.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains(&format!("cannot listen on 127.0.0.1:{port}")), "{said}");
    assert!(!said.contains("Demo organisations are ready"), "{said}");
    drop(taken);
    let _ = std::fs::remove_dir_all(dir);
}

/// A SQLite database that cannot be opened (a folder stands where the file should) is named in
/// the message, which SQLite's own does not do.
#[test]
fn an_unopenable_sqlite_file_is_named() {
    let dir = temp_dir("folder-db");
    std::fs::create_dir_all(dir.join("passerelle.db")).unwrap();
    let out = run(passerelle(&dir).arg("migrate"));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("passerelle.db: "), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

/// After migrating, `serve` still holds SQLite's own lock on the database file: closing another
/// descriptor of the file (the migration lock once was one) drops every POSIX lock the process
/// holds on it, and another process closing the file (`sqlite3 passerelle.db ".backup …"`) then
/// deleted the WAL under the service, acknowledged writes with it (from a soak review).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn serve_keeps_sqlites_lock_on_its_file() {
    use std::os::unix::fs::MetadataExt;
    let dir = temp_dir("locks");
    let port = free_port();
    let child = passerelle(&dir)
        .env("PASSERELLE_LISTEN", format!("127.0.0.1:{port}"))
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    assert_eq!(wait_ready(port).await.status().as_u16(), 200);
    let inode = std::fs::metadata(dir.join("passerelle.db")).unwrap().ino();
    let pid = server.0.id();
    let locks = std::fs::read_to_string("/proc/locks").unwrap();
    let held = locks.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1) == Some(&"POSIX")
            && fields.get(4) == Some(&pid.to_string().as_str())
            && fields.get(5).is_some_and(|f| f.ends_with(&format!(":{inode}")))
    });
    assert!(held, "no POSIX lock of {pid} on inode {inode}:\n{locks}");
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

/// Processes migrating one new SQLite file at once take turns: each succeeds. (Opening the file
/// together once failed one process in about two hundred with "database is locked", so the
/// rounds are many.)
#[test]
fn sqlite_migrations_run_one_process_at_a_time() {
    for round in 0..8 {
        let dir = temp_dir(&format!("migrate-{round}"));
        let children: Vec<Child> = (0..6)
            .map(|_| {
                passerelle(&dir)
                    .arg("migrate")
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A database whose chain head was deleted behind the service is said to be so by `audit
/// verify`, not as a driver's "no rows returned".
#[tokio::test]
async fn audit_verify_names_a_missing_chain_head() {
    let dir = temp_dir("headless");
    let out = run(passerelle(&dir).arg("migrate"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", dir.join("passerelle.db").display()))
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit_head").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    let out = run(passerelle(&dir).args(["audit", "verify"]));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the audit chain's head (the row of audit_head) is missing"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn serve_on_a_bare_machine_then_verify_the_audit_chain_offline() {
    let dir = temp_dir("bare");
    let port = free_port();
    let child = passerelle(&dir)
        .env("PASSERELLE_LISTEN", format!("127.0.0.1:{port}"))
        .args(["serve", "--demo"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Server(child);
    assert_eq!(wait_ready(port).await.status().as_u16(), 200);
    let _ = server.0.kill();
    let _ = server.0.wait();
    let mut stdout = String::new();
    std::io::Read::read_to_string(server.0.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert!(
        stdout.contains("demo-mut-tsevie") && stdout.contains("eyJ"),
        "a token per demo organisation: {stdout}"
    );

    let db = dir.join("passerelle.db");
    assert!(db.exists(), "passerelle.db is created in the working directory");
    assert!(
        dir.join("passerelle.db-wal").exists() || dir.join("passerelle.db-shm").exists(),
        "WAL mode"
    );

    let out = run(passerelle(&dir).args(["audit", "verify"]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["valid"], true);
    assert!(
        report["events_checked"].as_u64().unwrap() > 9,
        "the operator, eight organisations, products, households"
    );

    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE audit_events SET action = 'organization.deleted' WHERE seq = 4")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let out = run(passerelle(&dir).args(["audit", "verify"]));
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["first_invalid_seq"], 4);
    assert!(String::from_utf8_lossy(&out.stderr).contains("seq 4"));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn migrate_then_serve_from_postgres_without_migrating() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let dir = temp_dir("pg");
    let out = run(passerelle(&dir).env("PASSERELLE_DATABASE_URL", &db.url).arg("migrate"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(db.scalar("SELECT count(*) FROM audit_head").await, 1);
    let port = free_port();
    let child = passerelle(&dir)
        .env("PASSERELLE_DATABASE_URL", &db.url)
        .env("PASSERELLE_LISTEN", format!("127.0.0.1:{port}"))
        .args(["serve", "--no-migrate"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _server = Server(child);
    assert_eq!(wait_ready(port).await.status().as_u16(), 200);
    assert_eq!(
        db.scalar("SELECT count(*) FROM organizations WHERE kind = 'operator'")
            .await,
        1
    );
    assert!(
        !dir.join("passerelle.db").exists(),
        "no SQLite file when PostgreSQL is configured"
    );
    drop(_server);

    // A start that migrates a database already migrated logs at INFO without PostgreSQL's
    // notice that the migrations table exists, which every start used to carry.
    let port = free_port();
    let mut server = Server(
        passerelle(&dir)
            .env("PASSERELLE_DATABASE_URL", &db.url)
            .env("PASSERELLE_LISTEN", format!("127.0.0.1:{port}"))
            .env("PASSERELLE_LOG", "info")
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    assert_eq!(wait_ready(port).await.status().as_u16(), 200);
    let _ = server.0.kill();
    let _ = server.0.wait();
    let mut stderr = String::new();
    std::io::Read::read_to_string(server.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("\"serving\""), "INFO lines are logged: {stderr}");
    assert!(!stderr.contains("already exists"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A read replica that cannot be reached stops `serve`, naming its setting; `migrate` and
/// `audit verify`, which never read through it, do not try it.
#[tokio::test]
async fn an_unreachable_replica_is_named_and_stops_only_serve() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let dir = temp_dir("replica");
    // A port nothing listens on, on this machine.
    let dead = format!("postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable", free_port());
    let with_replica = |cmd: &mut Command| {
        cmd.env("PASSERELLE_DATABASE_URL", &db.url)
            .env("PASSERELLE_DATABASE_READ_URL", &dead)
            .env("PASSERELLE_JWT_HS256_SECRET", SECRET);
    };
    let mut migrate = passerelle(&dir);
    with_replica(&mut migrate);
    let out = run(migrate.arg("migrate"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut verify = passerelle(&dir);
    with_replica(&mut verify);
    let out = run(verify.args(["audit", "verify"]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut serve = passerelle(&dir);
    with_replica(&mut serve);
    let out = run(serve
        .env("PASSERELLE_LISTEN", format!("127.0.0.1:{}", free_port()))
        .args(["serve", "--no-migrate"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "something out of reach, not a configuration to mend"
    );
    assert!(stderr.contains("PASSERELLE_DATABASE_READ_URL"), "{stderr}");
    // The cause, not only that a pool timed out; so for the primary.
    assert!(stderr.contains("Connection refused"), "{stderr}");
    let out = run(passerelle(&dir).env("PASSERELLE_DATABASE_URL", &dead).arg("migrate"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("cannot open the database") && stderr.contains("Connection refused"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A spool folder that cannot be written stops the start, naming the setting and the folder:
/// the service would pass its readiness probe and then refuse every bulk upload.
#[test]
fn an_unwritable_spool_folder_stops_the_start() {
    let dir = temp_dir("spool");
    std::fs::write(dir.join("a-file"), b"").unwrap();
    let spool = dir.join("a-file").join("spool");
    let out = run(passerelle(&dir)
        .env("PASSERELLE_BATCH_SPOOL_DIR", &spool)
        .env("PASSERELLE_LISTEN", format!("127.0.0.1:{}", free_port()))
        .arg("serve"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "a configuration to mend: {stderr}");
    // Told once, as the log's last line, in the log's format (JSON by default), for a collector.
    assert_eq!(stderr.matches("PASSERELLE_BATCH_SPOOL_DIR").count(), 1, "{stderr}");
    let last: serde_json::Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "ERROR", "{last}");
    assert_eq!(last["message"], "the service stops", "{last}");
    let error = last["error"].as_str().unwrap();
    assert!(
        error.starts_with("configuration error: PASSERELLE_BATCH_SPOOL_DIR: "),
        "{error}"
    );
    assert!(error.contains(&spool.display().to_string()), "{error}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A JWKS served over https under a private certificate authority (a national identity
/// provider's, say) is trusted once the system's store holds that authority (`SSL_CERT_FILE`
/// here); without it, the start stops and says why. The server is `openssl s_server` on
/// 127.0.0.1 with a certificate made for the test.
#[tokio::test]
async fn a_jwks_behind_a_private_authority_is_trusted_through_the_system_store() {
    let dir = temp_dir("tls");
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=Test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/keys/jwks.json"),
        dir.join("jwks.json"),
    )
    .unwrap();
    let https_port = free_port();
    let _https = s_server(&dir, https_port, "-WWW");
    let jwks = format!("https://127.0.0.1:{https_port}/jwks.json");
    let start = |trusted: bool| {
        let port = free_port();
        let mut cmd = passerelle(&dir);
        cmd.env("PASSERELLE_JWT_JWKS", &jwks)
            .env("PASSERELLE_LISTEN", format!("127.0.0.1:{port}"))
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if trusted {
            cmd.env("SSL_CERT_FILE", dir.join("ca.pem"));
        }
        (cmd.spawn().unwrap(), port)
    };
    let (refused, _) = start(false);
    let out = refused.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("UnknownIssuer"), "the cause is named: {stderr}");
    let (trusted, port) = start(true);
    let _served = Server(trusted);
    assert_eq!(wait_ready(port).await.status().as_u16(), 200);

    // A start under the test authority that must stop: its error.
    let refused_start = |jwks: String| {
        let out = passerelle(&dir)
            .env("PASSERELLE_JWT_JWKS", jwks)
            .env("PASSERELLE_LISTEN", format!("127.0.0.1:{}", free_port()))
            .env("SSL_CERT_FILE", dir.join("ca.pem"))
            .arg("serve")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{stderr}");
        stderr
    };

    // A key set past 1 MiB is no key set, and is not read whole.
    std::fs::write(dir.join("big.json"), format!("{{\"keys\": []{}}}", " ".repeat(2 << 20))).unwrap();
    let stderr = refused_start(format!("https://127.0.0.1:{https_port}/big.json"));
    assert!(stderr.contains("more than 1048576 bytes"), "{stderr}");

    // A key set that redirects, to http above all (where anyone on the path could slip in a key
    // of their own), is not followed: the start stops and says where it was sent, and nothing is
    // asked of that address. `-HTTP` serves the file as the whole answer.
    let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    plain.set_nonblocking(true).unwrap();
    let plain_port = plain.local_addr().unwrap().port();
    std::fs::write(
        dir.join("moved.json"),
        format!("HTTP/1.0 302 Found\r\nLocation: http://127.0.0.1:{plain_port}/jwks.json\r\nContent-Length: 0\r\n\r\n"),
    )
    .unwrap();
    let moved_port = free_port();
    let _moved = s_server(&dir, moved_port, "-HTTP");
    let stderr = refused_start(format!("https://127.0.0.1:{moved_port}/moved.json"));
    assert!(
        stderr.contains(&format!(
            "302 Found, a redirect to http://127.0.0.1:{plain_port}/jwks.json, which is not followed"
        )),
        "{stderr}"
    );
    assert!(
        matches!(plain.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "nothing was asked of the http address"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// `openssl s_server` on 127.0.0.1:`port` with the certificate in `dir` (`server.pem`), serving
/// `dir`'s files in `mode` (`-WWW`: a file is the body; `-HTTP`: the whole answer), once it
/// accepts connections.
fn s_server(dir: &Path, port: u16, mode: &str) -> Server {
    let server = Command::new("openssl")
        .args([
            "s_server",
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-cert",
            "server.pem",
            "-key",
            "server.key",
            mode,
            "-quiet",
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Server(server)
}

/// A fresh SQLite database with the demo organisations and products (the library's own seeding).
async fn demo_database(dir: &Path) -> String {
    use passerelle_api::config::{Config, Secret};
    let url = format!("sqlite://{}", dir.join("passerelle.db").display());
    let mut config = Config::for_database(&url);
    config.jwt_hs256_secret = Some(Secret::new(SECRET));
    let db = passerelle_api::app::connect(&config).await.unwrap();
    db.migrate().await.unwrap();
    let state = passerelle_api::app::state(config.clone(), &db).await.unwrap();
    passerelle_api::app::ensure_operator(&state).await.unwrap();
    passerelle_api::demo::seed(&state, &Secret::new(SECRET)).await.unwrap();
    db.close().await;
    url
}

fn sample(name: &str) -> String {
    std::fs::read_to_string(format!("{}/../../samples/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[tokio::test]
async fn import_registers_the_samples_and_writes_the_errors_beside_the_file() {
    let dir = temp_dir("import");
    let url = demo_database(&dir).await;
    let import = |file: &str, org: &str, product: &str| {
        run(passerelle(&dir).env("PASSERELLE_DATABASE_URL", &url).args([
            "import",
            file,
            "--org",
            org,
            "--product",
            product,
            "--lang",
            "en",
        ]))
    };
    for (file, org, product, households) in [
        ("registrations-ml.csv", "demo-mut-segou", "demo-segou-base", 3),
        ("registrations-sn.csv", "demo-mut-thies", "demo-thies-cmu", 3),
        ("registrations.ndjson", "demo-mut-thies", "demo-thies-cmu", 3),
    ] {
        std::fs::write(dir.join(file), sample(file)).unwrap();
        let out = import(file, org, product);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{file}: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains(&format!("households: {households} created, 0 skipped")),
            "{stdout}"
        );
        assert!(stdout.contains("errors: 0"), "{stdout}");
    }
    // No server ran: the import chained its own events before it returned, the job's end last.
    {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_queue")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(queued, 0, "events left in the queue");
        let last: String = sqlx::query_scalar("SELECT action FROM audit_events ORDER BY seq DESC LIMIT 1")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(last, "registration_batch.completed");
        conn.close().await.unwrap();
    }

    // The Togo sample with one bad row more: the job completes, the row is in the errors file.
    let mut text = sample("registrations-tg.csv");
    text.push_str("TSV-Z,principal,TSV-2026-0199,\"Zinsou, dit \"\"Zin\"\"\",Afi,X,1980,,,,,,2026-01-01,\n");
    // A household key a spreadsheet would run as a formula.
    text.push_str("=1+2,principal,TSV-2026-0198,Zinsou,Afi,X,1980,,,,,,2026-01-01,\n");
    std::fs::write(dir.join("tg.csv"), &text).unwrap();
    let out = import("tg.csv", "demo-mut-tsevie", "demo-tsevie-famille");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("completed"), "{stdout}");
    assert!(stdout.contains("households: 3 created, 0 skipped"), "{stdout}");
    assert!(stdout.contains("rows: 11 read, 11 processed, 2 failed"), "{stdout}");
    // With a byte order mark, for spreadsheets to read the accents; the formula as text.
    let errors = std::fs::read_to_string(dir.join("tg.csv.errors.csv")).unwrap();
    assert_eq!(
        errors,
        "\u{FEFF}row,household,field,code,message\n11,TSV-Z,sex,unknown_value,must be F or M\n\
         12,'=1+2,sex,unknown_value,must be F or M\n"
    );
    // Again: every household is already there.
    let out = import("tg.csv", "demo-mut-tsevie", "demo-tsevie-famille");
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("households: 0 created, 3 skipped"), "{stdout}");
    assert!(!stdout.contains("possible duplicates"), "{stdout}");

    // A new household whose principal, written without accents and in capitals, looks like a
    // person of the sample registered without a national id: created, and reported.
    std::fs::write(
        dir.join("alike.csv"),
        format!(
            "{}\nTSV-D,principal,TSV-2026-0110,KPELAFIA,ablavi,F,1969,,,,,,2026-01-01,\n",
            text.lines().next().unwrap()
        ),
    )
    .unwrap();
    let out = import("alike.csv", "demo-mut-tsevie", "demo-tsevie-famille");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("households: 1 created, 0 skipped"), "{stdout}");
    assert!(stdout.contains("possible duplicates: 1"), "{stdout}");
    let report = std::fs::read_to_string(dir.join("alike.csv.errors.csv")).unwrap();
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 2, "{report}");
    assert!(
        lines[1].starts_with("2,TSV-D,family_name,possible_duplicate,\"created as "),
        "{report}"
    );
    assert!(lines[1].contains("(same names, sex and birth date)"), "{report}");

    // A file separated by semicolons, as a French-locale spreadsheet saves "CSV", gets its report
    // separated so too, for the same spreadsheet to open it in columns.
    std::fs::write(
        dir.join("semi.csv"),
        format!(
            "{}\r\nTSV-S;principal;TSV-2026-0120;Sena;Afi;X;1980;;;;;;2026-01-01;\r\n",
            text.lines().next().unwrap().replace(',', ";")
        ),
    )
    .unwrap();
    let out = import("semi.csv", "demo-mut-tsevie", "demo-tsevie-famille");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        std::fs::read_to_string(dir.join("semi.csv.errors.csv")).unwrap(),
        "\u{FEFF}row;household;field;code;message\n2;TSV-S;sex;unknown_value;must be F or M\n"
    );

    // A header that is not a registration file's: the job fails, exit 1. An unknown mutuelle,
    // a product not its own, a missing file: a command line to mend, exit 2 as for the argument
    // parser's own refusals. Nothing imported either way.
    std::fs::write(dir.join("bad.csv"), "household,relation\nH1,principal\n").unwrap();
    let out = import("bad.csv", "demo-mut-tsevie", "demo-tsevie-famille");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/header/relation unknown_column: not a column"),
        "{stderr}"
    );
    // In the language asked, as the rows' errors are.
    let out = run(passerelle(&dir).env("PASSERELLE_DATABASE_URL", &url).args([
        "import",
        "bad.csv",
        "--org",
        "demo-mut-tsevie",
        "--product",
        "demo-tsevie-famille",
        "--lang",
        "fr",
    ]));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/header/relation unknown_column: n'est pas une colonne"),
        "{stderr}"
    );
    let out = import("tg.csv", "demo-mut-nowhere", "demo-tsevie-famille");
    assert_eq!(out.status.code(), Some(2));
    let out = import("tg.csv", "demo-mut-tsevie", "demo-segou-base");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("command line error: --product"));
    let out = import("no-such-file.csv", "demo-mut-tsevie", "demo-tsevie-famille");
    assert_eq!(out.status.code(), Some(2));
    std::fs::create_dir_all(dir.join("folder.csv")).unwrap();
    let out = import("folder.csv", "demo-mut-tsevie", "demo-tsevie-famille");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("command line error: folder.csv: not a file"));

    // A file that stops being readable mid-way fails the job: a non-zero exit.
    let mut cut = sample("registrations-tg.csv");
    cut.push_str("TSV-Q,principal,TSV-2026-0150,\"Quenum,Afi,F,1980,,,,,,2026-01-01,\n");
    cut.push_str(&"x".repeat(3 << 20));
    std::fs::write(dir.join("cut.csv"), &cut).unwrap();
    let out = import("cut.csv", "demo-mut-tsevie", "demo-tsevie-famille");
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("unreadable_file"));
    let _ = std::fs::remove_dir_all(dir);
}

/// An import whose output nobody reads (`| head -1` that has its line) still completes, chains
/// its events and exits 0: the summary is dropped, not a panic.
#[tokio::test]
async fn an_import_whose_output_is_not_read_completes() {
    let dir = temp_dir("import-unread");
    let url = demo_database(&dir).await;
    std::fs::write(dir.join("ml.csv"), sample("registrations-ml.csv")).unwrap();
    let mut child = passerelle(&dir)
        .env("PASSERELLE_DATABASE_URL", &url)
        .args([
            "import",
            "ml.csv",
            "--org",
            "demo-mut-segou",
            "--product",
            "demo-segou-base",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let (status, queued): (String, i64) =
        sqlx::query_as("SELECT (SELECT status FROM registration_batches), (SELECT count(*) FROM audit_queue)")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!((status.as_str(), queued), ("completed", 0));
    conn.close().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// An import that cannot start leaves no job behind `running`, and an import killed earlier has
/// its job failed by the next one, as a server's sweeper would.
#[tokio::test]
async fn an_import_leaves_no_job_running() {
    let dir = temp_dir("import-jobs");
    let url = demo_database(&dir).await;
    let import = || {
        run(passerelle(&dir).env("PASSERELLE_DATABASE_URL", &url).args([
            "import",
            "tg.csv",
            "--org",
            "demo-mut-tsevie",
            "--product",
            "demo-tsevie-famille",
        ]))
    };
    std::fs::write(dir.join("tg.csv"), sample("registrations-tg.csv")).unwrap();
    // The errors file cannot be created (a folder has its name; even root cannot write it).
    std::fs::create_dir(dir.join("tg.csv.errors.csv")).unwrap();
    let out = import();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("tg.csv.errors.csv"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let jobs = || async {
        let rows: Vec<(String, Option<String>)> =
            sqlx::query_as("SELECT status, failure_code FROM registration_batches ORDER BY created_at")
                .fetch_all(&pool)
                .await
                .unwrap();
        rows
    };
    assert_eq!(jobs().await, [], "no job was created");
    std::fs::remove_dir(dir.join("tg.csv.errors.csv")).unwrap();

    // An import killed mid-way: its job is left running, without progress for long.
    assert!(import().status.success());
    sqlx::query(
        "UPDATE registration_batches SET status = 'running', worker = 'import-killed', finished_at = NULL, \
         heartbeat_at = '2000-01-01 00:00:00+00:00'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let out = import();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        jobs().await,
        [
            ("failed".to_owned(), Some("interrupted".to_owned())),
            ("completed".to_owned(), None)
        ]
    );
    pool.close().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// The demo's households are covered on the day the demo is first started, whatever the day:
/// started in January, they were in their waiting period (the README's checks answered
/// `WAITING_PERIOD`), and paid only through 31 December.
#[tokio::test]
async fn the_demo_is_covered_whatever_the_day_it_starts() {
    use chrono::{NaiveDate, TimeZone, Utc};
    use passerelle_api::config::{Config, Secret};
    use passerelle_domain::clock::FixedClock;
    use passerelle_domain::eligibility::evaluate;
    use passerelle_domain::ports::PersonKey;
    use passerelle_domain::product::{CareLevel, Category};

    for day in ["2027-01-02", "2026-12-31", "2028-02-29"] {
        let today = NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
        let dir = temp_dir("demo-day");
        let url = format!("sqlite://{}", dir.join("passerelle.db").display());
        let mut config = Config::for_database(&url);
        config.jwt_hs256_secret = Some(Secret::new(SECRET));
        let db = passerelle_api::app::connect(&config).await.unwrap();
        db.migrate().await.unwrap();
        let mut state = passerelle_api::app::state(config.clone(), &db).await.unwrap();
        let noon = Utc.from_utc_datetime(&today.and_hms_opt(12, 0, 0).unwrap());
        state.clock = std::sync::Arc::new(FixedClock(noon));
        passerelle_api::app::ensure_operator(&state).await.unwrap();
        passerelle_api::demo::seed(&state, &Secret::new(SECRET)).await.unwrap();
        for (org, member) in [
            ("demo-mut-tsevie", "DEMO-TSV-0001"),
            ("demo-mut-segou", "DEMO-SEG-0001"),
            ("demo-mut-thies", "DEMO-THS-0001"),
        ] {
            let key = PersonKey::Member {
                organization: org.to_owned(),
                member_number: member.to_owned(),
            };
            // On the first day, and still a year on.
            for on in [today, today.checked_add_months(chrono::Months::new(12)).unwrap()] {
                let facts = state.store.eligibility_facts(&key, on, false).await.unwrap().unwrap();
                let theirs = facts.coverages.iter().find(|c| c.coverage.organization == org).unwrap();
                let input = facts.input(theirs, on, CareLevel::HealthCenter, Some(Category::Consultation));
                let answer = evaluate(&input);
                assert!(
                    answer.is_eligible(),
                    "{member} seeded on {day}, on {on}: {:?}",
                    answer.reasons
                );
            }
        }
        db.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A database behind the binary is refused by `serve --no-migrate` and `import`, naming the first
/// missing migration and the command that applies it; `audit verify` checks it as it is (an old
/// backup must be verifiable without migrating it).
/// `erase-personal-data` takes one cut-off, never after today, refuses anything else as a
/// command line to mend (2), and prints what it did as JSON.
#[test]
fn erase_personal_data_takes_one_cutoff_and_prints_what_it_did() {
    let dir = temp_dir("erase");
    let out = run(passerelle(&dir).arg("migrate"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for (args, said) in [
        (
            vec![],
            "exactly one of --ended-before YYYY-MM-DD and --retention-days N",
        ),
        (
            vec!["--ended-before", "2020-01-01", "--retention-days", "30"],
            "exactly one",
        ),
        (vec!["--ended-before", "2999-01-01"], "is after today"),
        (vec!["--retention-days", "0"], "from 1 to 36600"),
        (vec!["--ended-before", "2020-02-30"], "invalid value"),
    ] {
        let out = run(passerelle(&dir).arg("erase-personal-data").args(&args));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(said), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let cutoff = (chrono::Utc::now().date_naive() - chrono::Days::new(3650)).to_string();
    for dry_run in [true, false] {
        let mut cmd = passerelle(&dir);
        cmd.args(["erase-personal-data", "--retention-days", "3650"]);
        if dry_run {
            cmd.arg("--dry-run");
        }
        let out = run(&mut cmd);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let said: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
        assert_eq!(said["ended_before"], cutoff.as_str(), "{said}");
        assert_eq!(said["dry_run"], dry_run, "{said}");
        assert_eq!(
            (said["people"].as_u64(), said["merged_records"].as_u64()),
            (Some(0), Some(0))
        );
        assert!(said["request_id"].as_str().unwrap().starts_with("erase-"), "{said}");
    }
    let out = run(passerelle(&dir).args(["audit", "verify"]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_database_behind_the_binary_is_refused_until_migrated() {
    let dir = temp_dir("behind");
    let url = format!("sqlite://{}", dir.join("passerelle.db").display());
    assert!(
        run(passerelle(&dir).env("PASSERELLE_DATABASE_URL", &url).arg("migrate"))
            .status
            .success()
    );
    // As if the newest migration were not applied yet.
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let (newest,): (i64,) = sqlx::query_as("SELECT max(version) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = ?")
        .bind(newest)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    std::fs::write(dir.join("people.csv"), "member_number\n").unwrap();
    for args in [
        vec!["serve", "--no-migrate"],
        vec!["import", "people.csv", "--org", "mut-a"],
        vec!["erase-personal-data", "--retention-days", "3650"],
    ] {
        let out = run(passerelle(&dir)
            .env("PASSERELLE_DATABASE_URL", &url)
            .env("PASSERELLE_LISTEN", format!("127.0.0.1:{}", free_port()))
            .args(&args));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started on a database behind it");
        assert!(
            stderr.contains(&format!("lacks 1 migration(s) this binary needs, from {newest}"))
                && stderr.contains("passerelle migrate"),
            "{args:?}: {stderr}"
        );
    }
    let out = run(passerelle(&dir)
        .env("PASSERELLE_DATABASE_URL", &url)
        .args(["audit", "verify"]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A fresh folder: no database at all is the same case, every migration missing.
    let empty = temp_dir("behind-empty");
    let out = run(passerelle(&empty).args(["serve", "--no-migrate"]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("passerelle migrate"));
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(empty);
}

/// `audit verify` writes nothing: it checks the events chained so far, on a database where every
/// transaction is read-only (a hot standby, an auditor's role), and leaves queued events queued.
#[tokio::test]
async fn audit_verify_reads_a_read_only_database_and_changes_nothing() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let dir = temp_dir("verify-ro");
    let out = run(passerelle(&dir).env("PASSERELLE_DATABASE_URL", &db.url).arg("migrate"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // One event chained (the operator's creation is not: nothing has started), one left queued as
    // by a process that stopped before chaining it.
    db.execute(
        "INSERT INTO audit_queue (at, organization, subject, action, resource_type, resource_id, request_id) \
         VALUES (now(), 'operator', 'cli', 'organization.created', 'organization', 'x', 'r1')",
    )
    .await;
    let separator = if db.url.contains('?') { '&' } else { '?' };
    let read_only = format!("{}{separator}options=-c%20default_transaction_read_only%3Don", db.url);
    let out = run(passerelle(&dir)
        .env("PASSERELLE_DATABASE_URL", &read_only)
        .args(["audit", "verify"]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report["head_seq"], 0, "{report}");
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_queue").await,
        1,
        "the queued event is left alone"
    );
    assert_eq!(db.scalar("SELECT count(*) FROM audit_events").await, 0);
    // On SQLite, a mistyped file is not created.
    let out = run(passerelle(&dir)
        .env("PASSERELLE_DATABASE_URL", "sqlite://typo.db")
        .args(["audit", "verify"]));
    assert!(!out.status.success());
    assert!(!dir.join("typo.db").exists(), "audit verify created a database");
    let _ = std::fs::remove_dir_all(dir);
}

/// Migration 23 makes member numbers one whatever their case. A database that already holds
/// two numbers of one organisation differing only in case stops `migrate` with that count and
/// where to read what to do, leaves the migration unapplied, and keeps the old index: nothing
/// half-done. The pair is planted by undoing the migration on a migrated database.
#[tokio::test]
async fn member_numbers_differing_only_in_case_stop_their_migration_by_name() {
    use sqlx::{Connection, Executor};
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let db = TestDatabase::new(backend).await;
        let dir = temp_dir("member-case");
        let migrate = || run(passerelle(&dir).env("PASSERELLE_DATABASE_URL", &db.url).arg("migrate"));
        let out = migrate();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let unchecked = without_foreign_keys(backend);
        let row = |id: &str, number: &str| {
            format!(
                "('{id}', 'b-{id}', 'p', 'o', 'complementary', '{number}', true, 'principal', '2026-01-01', \
                 'active', 1, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')"
            )
        };
        db.execute(&format!(
            "{unchecked}
             DROP INDEX coverages_member_number_folded;
             DELETE FROM _sqlx_migrations WHERE version = 20261202000023;
             INSERT INTO coverages (id, beneficiary, product, organization, layer, member_number, own_number,
               relationship, start_date, status, version, created_at, updated_at)
             VALUES {}, {}, {}",
            row("c1", "LOM-0001"),
            row("c2", "lom-0001"),
            row("c3", "LOM-0002")
        ))
        .await;
        let out = migrate();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        let named = match backend {
            Backend::Sqlite => "member_numbers_that_differ_only_in_case = 0",
            Backend::Postgres => "member numbers that differ only in case: 1 in this database",
        };
        assert!(stderr.contains(named), "{backend:?}: {stderr}");
        assert!(stderr.contains("migration failed"), "{stderr}");
        assert!(!stderr.contains("unavailable"), "not an outage: {stderr}");
        assert_eq!(
            db.scalar("SELECT count(*) FROM _sqlx_migrations WHERE version = 20261202000023")
                .await,
            0
        );
        // Renumbered as deploy/README.md says, the migration goes through and the index holds.
        db.execute("UPDATE coverages SET member_number = 'LOM-0001-B' WHERE id = 'c2'")
            .await;
        let out = migrate();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let clash = "UPDATE coverages SET member_number = 'lom-0002' WHERE id = 'c1'";
        let clash = match backend {
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
                c.execute(format!("{unchecked} {clash}").as_str()).await.map(|_| ())
            }
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
                c.execute(format!("{unchecked} {clash}").as_str()).await.map(|_| ())
            }
        };
        let clash = clash
            .expect_err("the new index refuses another case of a number")
            .to_string();
        assert!(clash.contains("coverages_member_number_folded"), "{backend:?}: {clash}");
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The statement that lets a session plant rows whose people and products do not exist.
fn without_foreign_keys(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "PRAGMA foreign_keys = OFF;",
        Backend::Postgres => "SET session_replication_role = replica;",
    }
}

/// Migration 24 mends the dependants terminated with their principal before their own start,
/// who had taken an end date before that start, and touches no other row.
#[tokio::test]
async fn dependants_terminated_before_their_start_lose_their_end_date() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let db = TestDatabase::new(backend).await;
        let dir = temp_dir("dependant-end");
        let migrate = || run(passerelle(&dir).env("PASSERELLE_DATABASE_URL", &db.url).arg("migrate"));
        let out = migrate();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let unchecked = without_foreign_keys(backend);
        let row = |id: &str, start: &str, end: &str| {
            format!(
                "('{id}', 'b-{id}', 'p', 'o', 'complementary', 'N-1', false, 'child', '{start}', '{end}', \
                 'terminated', 1, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')"
            )
        };
        db.execute(&format!(
            "{unchecked}
             DELETE FROM _sqlx_migrations WHERE version = 20261202000024;
             INSERT INTO coverages (id, beneficiary, product, organization, layer, member_number, own_number,
               relationship, start_date, end_date, status, version, created_at, updated_at)
             VALUES {}, {}, {}",
            row("late", "2026-12-01", "2026-11-30"),
            row("same-day", "2026-11-30", "2026-11-30"),
            row("ended", "2026-01-01", "2026-11-30")
        ))
        .await;
        let out = migrate();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mended = "SELECT count(*) FROM coverages WHERE id = 'late' AND end_date IS NULL AND version = 2";
        assert_eq!(db.scalar(mended).await, 1, "{backend:?}");
        let kept = "SELECT count(*) FROM coverages \
                    WHERE id IN ('same-day', 'ended') AND end_date = '2026-11-30' AND version = 1";
        assert_eq!(db.scalar(kept).await, 2, "{backend:?}");
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Migration 35 clears the end date an added dependant copied from its principal when no
/// `PATCH` of its own set it (no `coverage.updated` names it, chained or queued), whatever else
/// moved its version; it keeps a date a `PATCH` set, and a terminated row's.
#[tokio::test]
async fn added_dependants_changed_since_lose_the_copied_end_date() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let db = TestDatabase::new(backend).await;
        let dir = temp_dir("dependant-copy");
        let migrate = || run(passerelle(&dir).env("PASSERELLE_DATABASE_URL", &db.url).arg("migrate"));
        let out = migrate();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let unchecked = without_foreign_keys(backend);
        let row = |id: &str, principal: &str, end: &str, status: &str, version: i32| {
            let relationship = if principal == "NULL" { "principal" } else { "child" };
            format!(
                "('{id}', 'b-{id}', 'p', 'o', 'complementary', 'N-{id}', false, '{relationship}', {principal}, \
                 '2026-01-01', {end}, '{status}', {version}, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')"
            )
        };
        let event = |table: &str, seq: &str, id: &str| {
            format!(
                "INSERT INTO {table} ({seq}at, organization, subject, action, resource_type, resource_id, request_id{}) \
                 VALUES ({}'2026-02-01T00:00:00Z', 'o', 's', 'coverage.updated', 'coverage', '{id}', 'r'{});",
                if table == "audit_events" { ", digest, prev_digest" } else { "" },
                if seq.is_empty() { String::new() } else { "1000, ".to_owned() },
                if table == "audit_events" { ", 'd', 'p'" } else { "" },
            )
        };
        db.execute(&format!(
            "{unchecked}
             DELETE FROM _sqlx_migrations WHERE version = 20261206000035;
             INSERT INTO coverages (id, beneficiary, product, organization, layer, member_number, own_number,
               relationship, principal_coverage, start_date, end_date, status, version, created_at, updated_at)
             VALUES {}, {}, {}, {}, {};
             {} {}",
            row("head", "NULL", "'2027-12-31'", "active", 2),
            row("suspended-since", "'head'", "'2026-12-31'", "active", 3),
            row("patched", "'head'", "'2026-06-30'", "active", 2),
            row("patched-now", "'head'", "'2026-07-31'", "suspended", 2),
            row("ended", "'head'", "'2026-03-31'", "terminated", 2),
            event("audit_events", "seq, ", "patched"),
            event("audit_queue", "", "patched-now"),
        ))
        .await;
        let out = migrate();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mended = "SELECT count(*) FROM coverages WHERE id = 'suspended-since' AND end_date IS NULL AND version = 4";
        assert_eq!(db.scalar(mended).await, 1, "{backend:?}");
        let kept = "SELECT count(*) FROM coverages WHERE end_date IS NOT NULL AND version = 2 \
                    AND id IN ('head', 'patched', 'patched-now', 'ended')";
        assert_eq!(db.scalar(kept).await, 4, "{backend:?}");
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Replicas started at once on a new PostgreSQL database with `--demo` seed at once: each start
/// succeeds, and the demo data is there once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_seeding_at_once_from_two_replicas_succeeds_once() {
    use passerelle_adapters::testing::TestDatabase;
    use passerelle_adapters::Backend;
    use passerelle_api::config::{Config, Secret};
    use sqlx::Connection;

    let db = TestDatabase::new(Backend::Postgres).await;
    let mut config = Config::for_database(&db.url);
    config.jwt_hs256_secret = Some(Secret::new(SECRET));
    let first = passerelle_api::app::connect(&config).await.unwrap();
    first.migrate().await.unwrap();
    let second = passerelle_api::app::connect(&config).await.unwrap();
    let a = passerelle_api::app::state(config.clone(), &first).await.unwrap();
    let b = passerelle_api::app::state(config.clone(), &second).await.unwrap();
    passerelle_api::app::ensure_operator(&a).await.unwrap();
    for _ in 0..3 {
        let secret = Secret::new(SECRET);
        let (one, two) = tokio::join!(
            passerelle_api::demo::seed(&a, &secret),
            passerelle_api::demo::seed(&b, &secret)
        );
        one.unwrap();
        two.unwrap();
    }
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let (households,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM coverages WHERE member_number LIKE 'DEMO-%' AND relationship = 'principal'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(households, 4, "three households and the INAM affiliation");
    first.close().await;
    second.close().await;
}

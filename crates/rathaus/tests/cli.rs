//! The `rathaus` binary as an operator uses it.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_rathaus");

fn data(file: &str) -> String {
    format!("{}/../../data/{file}", env!("CARGO_MANIFEST_DIR"))
}

fn rathaus(dir: &Path, db: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .arg("--database-url")
        .arg(db)
        .env_remove("RATHAUS_ADMIN_TOKEN")
        .env("RATHAUS_LOG", "warn")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test]
async fn import_and_rules_commands_on_every_backend() {
    for backend in store::testing::backends() {
        let dir = tempfile::tempdir().unwrap();
        let (url, _keep) = store::testing::fresh_url(backend).await;
        let run = |args: &[&str]| rathaus(dir.path(), &url, args);

        let o = run(&["migrate"]);
        assert!(o.status.success(), "{}", text(&o));
        let o = run(&["import", "areas", &data("niedersachsen-gebiete-2017.csv")]);
        assert!(o.status.success(), "{}", text(&o));
        assert!(text(&o).contains("470 new"), "{}", text(&o));
        let o = run(&["import", "areas", &data("niedersachsen-gebiete-2017.csv")]);
        assert!(
            text(&o).contains("0 new, 0 updated, 0 deactivated, 470 unchanged"),
            "{}",
            text(&o)
        );
        let o = run(&["import", "services", &data("leika-sample.csv")]);
        assert!(text(&o).contains("493 new"), "{}", text(&o));

        let o = run(&[
            "rules",
            "add",
            "--service",
            "99115005104000",
            "--area",
            "03",
            "--level",
            "gemeindeverband",
        ]);
        assert!(o.status.success(), "{}", text(&o));
        let id = text(&o).trim().rsplit(' ').next().unwrap().to_owned();
        let o = run(&["rules", "list", "--service", "99115005104000"]);
        assert!(
            text(&o).contains(&id) && text(&o).contains("level gemeindeverband"),
            "{}",
            text(&o)
        );

        // Bad input: a clear message and a failing exit code.
        let o = run(&[
            "rules",
            "add",
            "--service",
            "99115005104000",
            "--area",
            "0325",
            "--level",
            "kreis",
        ]);
        assert!(!o.status.success());
        assert!(text(&o).contains("ARS"), "{}", text(&o));
        let o = run(&["import", "areas", "/nonexistent.csv"]);
        assert!(
            !o.status.success() && text(&o).contains("cannot read"),
            "{}",
            text(&o)
        );

        let csv = dir.path().join("rules.csv");
        std::fs::write(&csv, "leistungsschluessel,gebiet_ars,zustaendig_ars,ebene\n99115005070000,03,,gemeindeverband\n").unwrap();
        let o = run(&["rules", "import", csv.to_str().unwrap()]);
        assert!(text(&o).contains("rules imported: 1"), "{}", text(&o));
        let o = run(&["rules", "remove", &id]);
        assert!(o.status.success(), "{}", text(&o));
        let o = run(&["rules", "list"]);
        assert!(!text(&o).contains(&id));
    }
}

#[test]
fn serve_demo_writes_demo_json_and_stops_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let start = |dir: &Path| {
        let mut child = Command::new(BIN)
            .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .env_remove("RATHAUS_ADMIN_TOKEN")
            .env_remove("RATHAUS_DATABASE_URL")
            .env("RATHAUS_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let deadline = Instant::now() + Duration::from_secs(120);
        let addr = loop {
            assert!(Instant::now() < deadline, "no listen line");
            let line = lines.next().unwrap().unwrap();
            if let Some(rest) = line.strip_prefix("Rathaus listens on http://") {
                break rest.split(' ').next().unwrap().to_owned();
            }
        };
        (child, addr)
    };
    let (child, addr) = start(dir.path());
    let raw = std::fs::read_to_string(dir.path().join("demo.json")).unwrap();
    assert!(
        raw.trim_start()
            .trim_start_matches('{')
            .trim_start()
            .starts_with("\"base_url\""),
        "{raw}"
    );
    let demo: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(demo["areas"]["bad_nenndorf"], "032575403006");
    assert!(demo["admin_token"].as_str().unwrap().len() >= 32);
    let port = addr.rsplit(':').next().unwrap();
    assert_eq!(demo["base_url"], format!("http://localhost:{port}"));
    let ready = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{addr}/readyz"),
        ])
        .output();
    if let Ok(o) = ready {
        assert_eq!(String::from_utf8_lossy(&o.stdout), "200");
    }
    stop(child);

    // Restart on the same data dir: ready again, with the same token.
    let (child, _) = start(dir.path());
    let again: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("demo.json")).unwrap())
            .unwrap();
    assert_eq!(again["admin_token"], demo["admin_token"]);
    stop(child);
}

fn stop(mut child: std::process::Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit after SIGTERM: {status}");
            return;
        }
        assert!(Instant::now() < deadline, "did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

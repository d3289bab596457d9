//! A careful user's worst day, through the real binary: damaged and half-deleted homes,
//! hostile names and files, read-only copies, and events from keys the home does not trust.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::nats::NatsServer;
use crate::{keyed, ok, register, walk, Home};

#[test]
fn a_home_opens_after_a_sled_leftover_a_lost_index_and_a_torn_tail() {
    let (home, _) = keyed();
    let first = register(&home, "Ada");
    let second = register(&home, "Grace");
    // What a kill during sled's snapshot leaves (sled #1527).
    fs::write(
        home.store_path()
            .join("index/snap.FFFFFFFFFFFFFFFF.generating"),
        b"partial",
    )
    .unwrap();
    let run = home.run(&["verify"]);
    ok(&run);
    assert!(run.stderr.contains("recovery: removed"), "{}", run.stderr);
    // The index lost: the segments still hold every event, and verify says so.
    fs::remove_dir_all(home.store_path().join("index")).unwrap();
    let run = home.run(&["--json", "verify"]);
    ok(&run);
    assert_eq!(run.of_type("summary")[0]["events"], 2, "{}", run.stdout);
    // A torn tail (one byte short): the last commit is dropped and reported, the rest stays.
    let segment = home.store_path().join("blocks/00000000.seg");
    let len = fs::metadata(&segment).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    let run = home.run(&["--json", "verify"]);
    ok(&run);
    assert!(
        run.stderr.contains("incomplete commit") && run.stderr.contains("cut off"),
        "{}",
        run.stderr
    );
    assert_eq!(run.of_type("summary")[0]["events"], 1);
    ok(&home.run(&["show", "--person", &first]));
    assert_eq!(home.run(&["show", "--person", &second]).code, 2);
    // Appends go on after the cut.
    register(&home, "Katherine");
    ok(&home.run(&["verify"]));
}

#[test]
fn files_are_private_whatever_the_umask_and_the_home_mode() {
    let home = Home::new();
    fs::set_permissions(home.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let mut keygen = home.command(&["keygen"]);
    // SAFETY: the hook only sets the child's file-mode mask (async-signal-safe).
    unsafe {
        use std::os::unix::process::CommandExt;
        keygen.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        });
    }
    assert!(keygen.output().unwrap().status.success());
    register(&home, "Ada");
    for path in walk(&home.store_path()) {
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", path.display());
    }
}

#[test]
fn names_cannot_drive_the_terminal_or_fake_a_line() {
    let (home, _) = keyed();
    let id = register(&home, "Eve\u{1b}[2J\u{7}\u{202e}evil");
    let renamed = home.run(&[
        "append",
        "rename",
        "--person",
        &id,
        "--legal-name",
        "Eve\nlifecycle      Deceased",
    ]);
    ok(&renamed);
    assert!(!renamed.stdout.contains('\u{1b}'));
    let show = home.run(&["show", "--person", &id]);
    ok(&show);
    for bad in ['\u{1b}', '\u{7}', '\u{202e}'] {
        assert!(!show.stdout.contains(bad), "{:?}", show.stdout);
    }
    assert!(
        !show
            .stdout
            .lines()
            .any(|l| l.trim_start().starts_with("lifecycle      Deceased")),
        "{}",
        show.stdout
    );
    assert!(show.stdout.contains("Eve\\nlifecycle"), "{}", show.stdout);
    // JSON keeps the exact value.
    let json = ok(&home.run(&["--json", "show", "--person", &id])).records();
    assert_eq!(json[0].1["legal_name"], "Eve\nlifecycle      Deceased");
}

#[test]
fn limits_and_bad_input_are_errors_that_name_them() {
    let (home, _) = keyed();
    let id = register(&home, "Ada");
    let long = "x".repeat(2_000);
    let dir = tempfile::tempdir().unwrap();
    let dup = dir.path().join("dup.jsonl");
    fs::write(
        &dup,
        "{\"command\":\"register\",\"legal_name\":\"A\",\"legal_name\":\"B\"}\n",
    )
    .unwrap();
    let bad_utf8 = dir.path().join("utf8.jsonl");
    fs::write(
        &bad_utf8,
        b"{\"command\":\"register\",\"legal_name\":\"Line One\"}\n\xff\xfe\n".as_slice(),
    )
    .unwrap();
    home.expect_errors(&[
        (
            &["append", "suspend", "--person", &id, "--reason", &long],
            "over the limit of 1024 bytes",
        ),
        (
            &["append", "--file", "/dev/zero"],
            "longer than 65536 bytes",
        ),
        (&["append", "--file", dup.to_str().unwrap()], "given twice"),
        (
            &[
                "append",
                "set-birth-date",
                "--person",
                &id,
                "--date",
                "1815-12-10T10:00",
            ],
            "YYYY-MM-DD",
        ),
    ]);
    // An invalid line 2 keeps line 1.
    let run = home.run(&["--json", "append", "--file", bad_utf8.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains(":2: not UTF-8"), "{}", run.stderr);
    assert_eq!(run.of_type("appended").len(), 1);
    // Key files that are not keys are named for what they are.
    let empty = dir.path().join("empty.pem");
    fs::write(&empty, b"").unwrap();
    let huge = dir.path().join("huge.pem");
    fs::write(&huge, vec![b'A'; 100_000]).unwrap();
    home.expect_errors(&[
        (
            &[
                "--key",
                empty.to_str().unwrap(),
                "append",
                "register",
                "--legal-name",
                "X",
            ],
            "is empty",
        ),
        (
            &[
                "--key",
                huge.to_str().unwrap(),
                "append",
                "register",
                "--legal-name",
                "X",
            ],
            "not a key file",
        ),
    ]);
}

#[test]
fn a_read_only_copy_verifies_and_reads_beside_a_writer() {
    let (home, _) = keyed();
    let id = register(&home, "Ada");
    // Beside a process that holds the store for writing, reading commands still work.
    let lock = fs::OpenOptions::new()
        .read(true)
        .open(home.store_path().join("LOCK"))
        .unwrap();
    lock.try_lock().unwrap();
    ok(&home.run(&["verify"]));
    ok(&home.run(&["show", "--person", &id]));
    let refused = home.run(&["append", "register", "--legal-name", "B"]);
    assert_eq!(refused.code, 2);
    assert!(refused
        .stderr
        .contains("in use by another personctl process"));
    drop(lock);
    // An auditor's copy without write permission (as root, run as nobody).
    let copy = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp")
        .args(["-a"])
        .arg(home.path().join("store"))
        .arg(copy.path())
        .status()
        .unwrap();
    assert!(status.success());
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    for path in walk(copy.path()) {
        fs::set_permissions(&path, fs::Permissions::from_mode(0o444)).unwrap();
    }
    for dir in [
        copy.path().join("store/blocks"),
        copy.path().join("store/index"),
        copy.path().join("store"),
    ] {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o555)).unwrap();
    }
    fs::set_permissions(copy.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let mut verify = std::process::Command::new(crate::personctl());
    verify
        .args(["--json", "verify"])
        .env("PERSONCTL_HOME", copy.path());
    if root {
        let mut wrapped = std::process::Command::new("setpriv");
        wrapped
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(crate::personctl())
            .args(["--json", "verify"])
            .env("PERSONCTL_HOME", copy.path());
        verify = wrapped;
    }
    let out = verify.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"events\":1,"), "{stdout}");
}

#[test]
fn events_from_an_untrusted_key_are_not_adopted_until_trusted() {
    let server = NatsServer::start();
    let url = server.url();
    let (stranger, stranger_did) = keyed();
    let id = register(&stranger, "Mallory");
    ok(&stranger.run(&["--nats", &url, "sync"]));
    let (home, _) = keyed();
    let run = home.run(&["--nats", &url, "sync"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("not adopted") && run.stderr.contains("personctl trust add"),
        "{}",
        run.stderr
    );
    let streams = ok(&home.run(&["--json", "streams"])).records();
    assert!(streams.is_empty(), "{streams:?}");
    assert_eq!(home.run(&["show", "--person", &id]).code, 2);
    ok(&home.run(&["trust", "add", &stranger_did]));
    ok(&home.run(&["--nats", &url, "sync"]));
    ok(&home.run(&["show", "--person", &id]));
}

#[test]
fn readers_mark_events_that_no_trusted_key_signed() {
    let (home, _) = keyed();
    let id = register(&home, "Ada");
    // An event signed by a key this home does not trust (written with --key).
    let other = tempfile::tempdir().unwrap();
    let key = other.path().join("other.pem");
    ok(&home.run(&["keygen", "--out", key.to_str().unwrap(), "--no-trust"]));
    ok(&home.run(&[
        "--key",
        key.to_str().unwrap(),
        "append",
        "add-skill",
        "--person",
        &id,
        "--name",
        "Rust",
        "--level",
        "3",
    ]));
    for verb in ["show", "replay"] {
        let text = home.run(&[verb, "--person", &id]);
        ok(&text);
        assert!(
            text.stdout
                .contains("1 event is signed by keys this home does not trust"),
            "{verb}: {}",
            text.stdout
        );
        let json = home.run(&["--json", verb, "--person", &id]);
        ok(&json);
        let records = json.records();
        assert_eq!(
            records[0].1["untrusted_events"].as_array().unwrap().len(),
            1
        );
    }
    assert_eq!(home.run(&["verify"]).code, 1);
}

//! `fengqiao backup` of a running node under write load and `fengqiao restore` of each backup:
//! the restored node opens, its signatures verify, and it holds exactly the writes committed up
//! to the snapshot's feed position; damaged, truncated and misdirected restores are refused.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fengqiao_tests::{
    NodeProcess, case_number, http_get, http_post, init_node, path_str, run_cli, run_cli_json,
    run_cli_ok, sample_registration,
};

const REGION: &str = "430702001001";

/// One acknowledged write of the load, in the order the node acknowledged them (one writer, so
/// also the order of their commits).
#[derive(Debug, Clone)]
enum Write {
    Register { number: String },
    Note { number: String, text: String },
}

/// The load: one thread registering cases and adding notes to cases registered earlier (spread
/// over the whole range of numbers, so notes land both on cases a running backup has copied and
/// on cases it has yet to reach). Each write is recorded once the node acknowledged it.
struct Load {
    writes: Arc<Mutex<Vec<Write>>>,
    acknowledged: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(node: &NodeProcess) -> Load {
        let writes = Arc::new(Mutex::new(Vec::new()));
        let acknowledged = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let address = node.address;
        let thread = {
            let (writes, acknowledged, stop) = (
                Arc::clone(&writes),
                Arc::clone(&acknowledged),
                Arc::clone(&stop),
            );
            std::thread::spawn(move || {
                let mut numbers: Vec<String> = Vec::new();
                let mut index = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    index += 1;
                    let write = if index.is_multiple_of(3) && !numbers.is_empty() {
                        // Far apart in key order from one note to the next.
                        let number = numbers[(index * 7919) % numbers.len()].clone();
                        let text = format!("备份测试备注 {index}");
                        let (status, answer) = http_post(
                            address,
                            &format!("/api/cases/{number}/events"),
                            &serde_json::json!({"kind": "note", "payload": {"text": text}}),
                        )
                        .expect("note");
                        assert_eq!(status, 200, "note on {number}: {answer}");
                        Write::Note { number, text }
                    } else {
                        let (status, view) =
                            http_post(address, "/api/cases", &sample_registration(REGION, index))
                                .expect("register");
                        assert_eq!(status, 201, "register: {view}");
                        let number = case_number(&view);
                        numbers.push(number.clone());
                        Write::Register { number }
                    };
                    writes.lock().expect("writes").push(write);
                    acknowledged.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        Load {
            writes,
            acknowledged,
            stop,
            thread: Some(thread),
        }
    }

    fn acknowledged(&self) -> usize {
        self.acknowledged.load(Ordering::SeqCst)
    }

    fn wait_for(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.acknowledged() < count {
            assert!(Instant::now() < deadline, "the load made too few writes");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn finish(mut self) -> Vec<Write> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the load thread failed");
        }
        self.writes.lock().expect("writes").clone()
    }
}

/// A backup taken while the load ran, with how many writes had been acknowledged before it
/// began and when it ended.
struct TakenBackup {
    file: std::path::PathBuf,
    acknowledged_before: usize,
    acknowledged_after: usize,
}

/// Which of `writes` the restored node serving at `node` holds.
fn writes_held(node: &NodeProcess, writes: &[Write]) -> Vec<bool> {
    let mut cases: std::collections::HashMap<String, Option<String>> =
        std::collections::HashMap::new();
    let mut case_text = |number: &str| -> Option<String> {
        cases
            .entry(number.to_owned())
            .or_insert_with(|| {
                let (status, view) =
                    http_get(node.address, &format!("/api/cases/{number}")).expect("get case");
                match status {
                    200 => Some(view["events"].to_string()),
                    404 => None,
                    other => panic!("case {number}: HTTP {other}: {view}"),
                }
            })
            .clone()
    };
    writes
        .iter()
        .map(|write| match write {
            Write::Register { number } => case_text(number).is_some(),
            Write::Note { number, text } => {
                case_text(number).is_some_and(|events| events.contains(text.as_str()))
            }
        })
        .collect()
}

#[test]
fn backups_under_write_load_restore_exactly_the_writes_up_to_their_position() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("village");
    init_node(&dir, "芦荻山村调解室", "village", REGION);
    let node = NodeProcess::start(&dir).expect("start node");
    let dir_arg = path_str(&dir);

    let load = Load::start(&node);
    load.wait_for(120);
    let mut backups = Vec::new();
    for round in 0..3 {
        let file = temp.path().join(format!("backup-{round}.fqb"));
        let acknowledged_before = load.acknowledged();
        let answer = run_cli_json(&["backup", "--to", path_str(&file), "--dir", dir_arg]);
        let acknowledged_after = load.acknowledged();
        assert_eq!(answer["header"]["format_version"], 1, "{answer}");
        assert!(answer["bytes"].as_u64().unwrap_or(0) > 0, "{answer}");
        backups.push(TakenBackup {
            file,
            acknowledged_before,
            acknowledged_after,
        });
        load.wait_for(acknowledged_after + 40);
    }
    let writes = load.finish();
    drop(node);
    // Nothing but the backups themselves is left beside them: each was renamed into place.
    let leftovers: Vec<String> = std::fs::read_dir(temp.path())
        .expect("read temp dir")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    for (round, backup) in backups.iter().enumerate() {
        let restored_dir = temp.path().join(format!("restored-{round}"));
        let restored = run_cli_json(&["restore", path_str(&backup.file), path_str(&restored_dir)]);
        let restored_node = NodeProcess::start(&restored_dir).expect("start the restored node");
        let verified = run_cli_ok(&["audit", "verify", "--dir", path_str(&restored_dir)]);
        assert!(
            verified.contains("all signatures valid"),
            "round {round}: {verified}"
        );
        let held = writes_held(&restored_node, &writes);
        // One feed position: the writes held are exactly the first `prefix` acknowledged.
        let prefix = held.iter().take_while(|held| **held).count();
        assert!(
            held[prefix..].iter().all(|held| !held),
            "round {round}: the restored node holds writes {:?} after missing write {prefix}",
            held.iter()
                .enumerate()
                .skip(prefix)
                .filter(|(_, held)| **held)
                .map(|(index, _)| index)
                .collect::<Vec<_>>()
        );
        assert!(
            prefix >= backup.acknowledged_before,
            "round {round}: {prefix} writes restored, {} were acknowledged before the backup",
            backup.acknowledged_before
        );
        // At most the write in flight when the backup ended may be in it beyond those.
        assert!(
            prefix <= backup.acknowledged_after + 1,
            "round {round}: {prefix} writes restored, only {} acknowledged by its end",
            backup.acknowledged_after
        );
        let registered = writes[..prefix]
            .iter()
            .filter(|write| matches!(write, Write::Register { .. }))
            .count();
        assert_eq!(
            restored["cases"].as_u64(),
            Some(registered as u64),
            "round {round}: {restored}"
        );
        let (status, health) = http_get(restored_node.address, "/api/health").expect("health");
        assert_eq!(status, 200, "{health}");
        assert_eq!(
            health["case_count"].as_u64(),
            Some(registered as u64),
            "{health}"
        );
        // The restored node goes on numbering after every number the original handed out
        // before the snapshot, and takes writes.
        let (status, view) = http_post(
            restored_node.address,
            "/api/cases",
            &sample_registration(REGION, 100_000),
        )
        .expect("register on the restored node");
        assert_eq!(status, 201, "{view}");
        let new_number = case_number(&view);
        assert!(
            writes[..prefix].iter().all(|write| match write {
                Write::Register { number } => number.as_str() < new_number.as_str(),
                Write::Note { .. } => true,
            }),
            "round {round}: {new_number} repeats or precedes a restored number"
        );
    }
}

fn refusal(args: &[&str]) -> String {
    let output = run_cli(args);
    assert!(!output.status.success(), "fengqiao {args:?} succeeded");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn damaged_truncated_and_misdirected_restores_are_refused() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("village");
    init_node(&dir, "芦荻山村调解室", "village", REGION);
    let node = NodeProcess::start(&dir).expect("start node");
    for index in 0..5 {
        fengqiao_tests::register_sample(&node, REGION, index);
    }
    let file = temp.path().join("whole.fqb");
    run_cli_ok(&["backup", "--to", path_str(&file), "--dir", path_str(&dir)]);
    drop(node);
    let bytes = std::fs::read(&file).expect("read backup");

    let truncated = temp.path().join("truncated.fqb");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).expect("write");
    let flipped = temp.path().join("flipped.fqb");
    let mut damaged = bytes.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x01;
    std::fs::write(&flipped, &damaged).expect("write");
    for bad in [&truncated, &flipped] {
        let target = temp.path().join("from-bad");
        let message = refusal(&["restore", path_str(bad), path_str(&target)]);
        assert!(
            message.contains("is damaged or truncated: its checksum does not match"),
            "{message}"
        );
        assert!(
            !target.exists(),
            "a refused restore left {}",
            target.display()
        );
    }

    let newer = temp.path().join("newer.fqb");
    let mut other_version = bytes.clone();
    let header_at = other_version
        .windows(br#""format_version":1"#.len())
        .position(|window| window == br#""format_version":1"#)
        .expect("the header names its version");
    other_version[header_at + br#""format_version":"#.len()] = b'9';
    std::fs::write(&newer, &other_version).expect("write");
    let message = refusal(&[
        "restore",
        path_str(&newer),
        path_str(&temp.path().join("n")),
    ]);
    assert!(message.contains("format version 9"), "{message}");

    let not_a_backup = temp.path().join("notes.txt");
    std::fs::write(&not_a_backup, "台账\n").expect("write");
    let message = refusal(&[
        "restore",
        path_str(&not_a_backup),
        path_str(&temp.path().join("x")),
    ]);
    assert!(message.contains("is not a Fengqiao backup"), "{message}");

    // Never over a node, nor into any directory that holds something.
    let message = refusal(&["restore", path_str(&file), path_str(&dir)]);
    assert!(message.contains("is not empty"), "{message}");
    let occupied = temp.path().join("occupied");
    std::fs::create_dir(&occupied).expect("mkdir");
    std::fs::write(occupied.join("keep.txt"), "mine").expect("write");
    let message = refusal(&["restore", path_str(&file), path_str(&occupied)]);
    assert!(message.contains("is not empty"), "{message}");
    assert_eq!(
        std::fs::read_to_string(occupied.join("keep.txt")).expect("read"),
        "mine"
    );

    // An empty directory is fine, and the whole file restores.
    let empty = temp.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let restored = run_cli_json(&["restore", path_str(&file), path_str(&empty)]);
    assert_eq!(restored["cases"], 5, "{restored}");
    assert_restored_node_opens(&empty, 5);
}

fn assert_restored_node_opens(dir: &Path, cases: u64) {
    let node = NodeProcess::start(dir).expect("start the restored node");
    let (status, health) = http_get(node.address, "/api/health").expect("health");
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["case_count"].as_u64(), Some(cases), "{health}");
}

#[test]
fn only_an_admin_takes_a_backup() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("village");
    init_node(&dir, "芦荻山村调解室", "village", REGION);
    fengqiao_tests::add_account(&dir, "lizt", "李调解", &["operator", "supervisor"]);
    let node = NodeProcess::start(&dir).expect("start node");
    let file = temp.path().join("b.fqb");
    let message = refusal(&[
        "backup",
        "--to",
        path_str(&file),
        "--dir",
        path_str(&dir),
        "--as",
        "lizt",
    ]);
    assert!(message.contains("backup_node"), "{message}");
    assert!(!file.exists());
    drop(node);
}

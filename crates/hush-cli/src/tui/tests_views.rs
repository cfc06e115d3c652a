//! The devices view (F2) and the backup view (F3) without a terminal:
//! keys, updates and drawing into ratatui's `TestBackend`.

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use hush_client::{BackupTarget, DeviceView};
use hush_wire::api::BackupStatus;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use zeroize::Zeroizing;

use super::app::{Action, App, Screen, Update};
use super::ui;
use super::views::{BackupInfo, Created, ShownKey, Task};

/// 2026-12-07 06:00 UTC, in ms.
const DAY_MS: u64 = 1_796_623_200_000;

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn draw(app: &App) -> String {
    let mut terminal = Terminal::new(TestBackend::new(120, 24)).unwrap();
    terminal
        .draw(|f| ui::render(f, app, Instant::now()))
        .unwrap();
    let buffer = terminal.backend().buffer();
    for cell in buffer.content() {
        assert!(
            !cell.symbol().chars().any(crate::inert::is_unsafe),
            "a raw control character reached the screen: {:?}",
            cell.symbol()
        );
    }
    let mut out = String::new();
    for y in 0..buffer.area.height {
        for x in 0..buffer.area.width {
            out.push_str(buffer[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

fn typed(app: &mut App, text: &str) -> Vec<Action> {
    let now = Instant::now();
    text.chars()
        .flat_map(|c| app.on_key(key(KeyCode::Char(c)), now))
        .collect()
}

fn device(id: u32, name: Option<&str>, this: bool, seen: Option<u64>) -> DeviceView {
    DeviceView {
        id,
        name: name.map(str::to_owned),
        this,
        added_at_ms: DAY_MS,
        last_seen_ms: seen,
    }
}

/// alice on her phone, with the devices view open on phone and laptop.
fn devices_open() -> App {
    let now = Instant::now();
    let mut app = App::new("alice", None);
    assert_eq!(app.on_key(key(KeyCode::F(2)), now), [Action::ListDevices]);
    assert!(draw(&app).contains("Asking the key directory"));
    app.on_update(
        Update::Devices(vec![
            device(1, Some("phone"), true, Some(DAY_MS + 86_400_000)),
            device(2, Some("laptop"), false, None),
        ]),
        now,
    );
    app
}

#[test]
fn f2_lists_the_devices_and_esc_goes_back() {
    let now = Instant::now();
    let mut app = devices_open();
    let screen = draw(&app);
    assert!(screen.contains("Devices of alice"), "{screen}");
    assert!(
        screen.contains("*  1  phone (this device)  added 2026-12-07  last seen 2026-12-08"),
        "{screen}"
    );
    assert!(
        screen.contains("   2  laptop  added 2026-12-07  last seen never here"),
        "{screen}"
    );
    assert!(screen.contains("x remove"), "{screen}");
    // Letters are commands here, not a message.
    assert!(typed(&mut app, "q").is_empty());
    assert!(app.composer.is_empty());
    assert!(app.on_key(key(KeyCode::Esc), now).is_empty());
    assert_eq!(app.screen, Screen::Chat);
    assert!(!app.quit);
    assert!(draw(&app).contains("F2 devices · F3 backup"));
}

#[test]
fn rename_and_link_take_a_line() {
    let now = Instant::now();
    let mut app = devices_open();
    app.on_key(key(KeyCode::Down), now);
    assert!(typed(&mut app, "r").is_empty());
    let screen = draw(&app);
    assert!(screen.contains("New name"), "{screen}");
    assert!(screen.contains("│laptop"), "{screen}");
    for _ in 0.."laptop".len() {
        app.on_key(key(KeyCode::Backspace), now);
    }
    assert!(typed(&mut app, "work laptop").is_empty());
    assert_eq!(
        app.on_key(key(KeyCode::Enter), now),
        [Action::RenameDevice(2, "work laptop".into())]
    );
    assert!(draw(&app).contains("renaming device 2…"));
    app.on_update(
        Update::Task(Task::Done("device 2 is now called work laptop".into())),
        now,
    );
    // Esc leaves a prompt, not the view.
    typed(&mut app, "l");
    assert!(draw(&app).contains("Link code the new device shows"));
    app.on_key(key(KeyCode::Esc), now);
    assert!(matches!(app.screen, Screen::Devices(_)));
    typed(&mut app, "l");
    typed(&mut app, "abcde-fghij");
    assert_eq!(
        app.on_key(key(KeyCode::Enter), now),
        [Action::LinkDevice("abcde-fghij".into())]
    );
    assert!(app.busy());
    let screen = draw(&app);
    assert!(
        screen.contains("linking: waiting for the new device…"),
        "{screen}"
    );
    app.on_update(
        Update::Task(Task::Working("history: packed 3 messages (1.0 KiB)".into())),
        now,
    );
    assert!(draw(&app).contains("history: packed 3 messages"));
}

#[test]
fn remove_asks_first_and_never_this_device() {
    let now = Instant::now();
    let mut app = devices_open();
    assert!(typed(&mut app, "x").is_empty());
    let screen = draw(&app);
    assert!(
        screen.contains("this is the device you are using"),
        "{screen}"
    );
    app.on_key(key(KeyCode::Down), now);
    assert!(typed(&mut app, "x").is_empty());
    let screen = draw(&app);
    assert!(screen.contains("Remove device 2 (laptop)?"), "{screen}");
    // Anything but y keeps it.
    assert!(typed(&mut app, "n").is_empty());
    assert!(!draw(&app).contains("Remove device 2"));
    typed(&mut app, "x");
    assert_eq!(typed(&mut app, "y"), [Action::RemoveDevice(2)]);
    // One request at a time.
    typed(&mut app, "x");
    assert!(draw(&app).contains("wait: the last request is still running"));
    app.on_update(Update::Task(Task::Done("removed device 2".into())), now);
    app.on_update(
        Update::Devices(vec![device(1, Some("phone"), true, None)]),
        now,
    );
    let screen = draw(&app);
    assert!(!screen.contains("laptop"), "{screen}");
    assert!(screen.contains("removed device 2"), "{screen}");
    assert!(screen.contains("> *  1  phone"), "{screen}");
}

#[test]
fn a_request_that_ends_after_the_view_is_left_says_so_in_the_chat() {
    let now = Instant::now();
    let mut app = devices_open();
    typed(&mut app, "l");
    typed(&mut app, "code");
    app.on_key(key(KeyCode::Enter), now);
    app.on_key(key(KeyCode::Esc), now);
    assert_eq!(app.screen, Screen::Chat);
    app.on_update(
        Update::Task(Task::Failed("the device was not linked: timed out".into())),
        now,
    );
    assert!(draw(&app).contains("the device was not linked: timed out"));
    // Success is said until the next key; a failure stays like any error.
    let mut app = App::new("alice", None);
    app.on_update(
        Update::Task(Task::Done("scheduled backup: wrote /tmp/b (1 KiB)".into())),
        now,
    );
    assert!(draw(&app).contains("scheduled backup: wrote /tmp/b"));
    app.on_key(key(KeyCode::Char('h')), now);
    let screen = draw(&app);
    assert!(!screen.contains("scheduled backup"), "{screen}");
    assert!(screen.contains("F2 devices"), "{screen}");
}

#[test]
fn a_hostile_device_name_is_drawn_inert() {
    let now = Instant::now();
    let mut app = devices_open();
    app.on_update(
        Update::Devices(vec![
            device(1, Some("phone"), true, None),
            device(3, Some("ev\x1b[2Jil\u{202e}"), false, None),
        ]),
        now,
    );
    let screen = draw(&app);
    assert!(screen.contains(r"ev\x1b[2Jil\u{202e}"), "{screen}");
    app.on_key(key(KeyCode::Down), now);
    typed(&mut app, "x");
    assert!(draw(&app).contains(r"(ev\x1b[2Jil\u{202e})?"));
}

fn backup_open() -> App {
    let now = Instant::now();
    let mut app = App::new("alice", None);
    app.backup_file = "backups/hush-backup-2026-12-07.hushbackup".into();
    assert_eq!(app.on_key(key(KeyCode::F(3)), now), [Action::BackupStatus]);
    app.on_update(
        Update::BackupInfo(BackupInfo {
            schedule: Some((
                BackupTarget::File("backups/daily.hushbackup".into()),
                Duration::from_secs(86_400),
            )),
            server: Ok(Some(BackupStatus {
                size: 3 * 1024 * 1024,
                updated_at_ms: DAY_MS,
            })),
        }),
        now,
    );
    app
}

#[test]
fn f3_shows_the_schedule_and_what_the_server_holds() {
    let now = Instant::now();
    let app = backup_open();
    let screen = draw(&app);
    assert!(
        screen
            .contains("Scheduled: a backup is kept at backups/daily.hushbackup no older than 1day"),
        "{screen}"
    );
    assert!(
        screen.contains("On the server: a backup of 3.0 MiB stored 2026-12-07T06:00:00Z"),
        "{screen}"
    );
    let mut app = App::new("alice", None);
    app.on_key(key(KeyCode::F(3)), now);
    app.on_update(
        Update::BackupInfo(BackupInfo {
            schedule: None,
            server: Err("connection refused".into()),
        }),
        now,
    );
    let screen = draw(&app);
    assert!(screen.contains("Scheduled: none"), "{screen}");
    assert!(
        screen.contains("On the server: cannot tell (connection refused)"),
        "{screen}"
    );
}

#[test]
fn a_backup_to_a_file_or_the_server() {
    let now = Instant::now();
    let mut app = backup_open();
    typed(&mut app, "f");
    let screen = draw(&app);
    assert!(
        screen.contains("│backups/hush-backup-2026-12-07.hushbackup"),
        "{screen}"
    );
    app.on_key(
        KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL),
        now,
    );
    typed(&mut app, "/tmp/b.hushbackup");
    assert_eq!(
        app.on_key(key(KeyCode::Enter), now),
        [Action::BackupToFile("/tmp/b.hushbackup".into())]
    );
    assert!(draw(&app).contains("writing the backup…"));
    app.on_update(Update::Task(Task::Done("backup made".into())), now);
    // The server's backup is replaced only when confirmed.
    typed(&mut app, "s");
    assert!(draw(&app).contains("Store a new backup on the server?"));
    assert!(app.on_key(key(KeyCode::Esc), now).is_empty());
    assert!(matches!(app.screen, Screen::Backup(_)));
    typed(&mut app, "s");
    assert_eq!(typed(&mut app, "y"), [Action::BackupToServer]);
}

const KEY: &str = "0123 4567 89ab cdef 0123 4567 89ab cdef 0123 4567 89ab cdef 0123 4567 89ab cdef";

fn created(file: Option<&str>) -> Update {
    Update::BackupCreated(Created {
        file: file.map(str::to_owned),
        bytes: 2048,
        messages: 12,
        conversations: 2,
        key: ShownKey(Zeroizing::new(KEY.into())),
    })
}

#[test]
fn the_recovery_key_is_shown_once_until_enter() {
    let now = Instant::now();
    // Even when the user went back to the chat meanwhile.
    let mut app = App::new("alice", None);
    app.on_update(created(Some("/tmp/b.hushbackup")), now);
    let screen = draw(&app);
    assert!(screen.contains("RECOVERY KEY (shown once"), "{screen}");
    // In two rows of 8 groups, to fit 80 columns.
    assert_eq!(
        screen
            .matches("    0123 4567 89ab cdef 0123 4567 89ab cdef")
            .count(),
        2,
        "{screen}"
    );
    assert!(
        screen.contains(
            "Backup written to /tmp/b.hushbackup (2.0 KiB, 12 messages in 2 conversations)"
        ),
        "{screen}"
    );
    assert!(
        screen.contains("hush restore --server URL FILE"),
        "{screen}"
    );
    // Nothing else takes it away: not Esc, not F2, not a letter.
    for k in [
        KeyCode::Esc,
        KeyCode::F(2),
        KeyCode::Char('f'),
        KeyCode::Tab,
    ] {
        assert!(app.on_key(key(k), now).is_empty());
        assert!(draw(&app).contains("RECOVERY KEY"));
    }
    assert_eq!(app.on_key(key(KeyCode::Enter), now), [Action::BackupStatus]);
    let screen = draw(&app);
    assert!(!screen.contains("RECOVERY KEY"), "{screen}");
    assert!(!screen.contains("0123 4567"), "{screen}");
    assert!(matches!(app.screen, Screen::Backup(_)));
    // The key never shows in a debug print of the update.
    let debug = format!("{:?}", created(None));
    assert!(!debug.contains("0123 4567"), "{debug}");
    app.on_update(created(None), now);
    assert!(draw(&app).contains("hush restore --server URL --from-server"));
    // Quitting still works.
    let quit = app.on_key(
        KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL),
        now,
    );
    assert_eq!(quit, [Action::Quit]);
}

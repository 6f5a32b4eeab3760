use super::*;
use crate::error::ErrorKind;

fn parse(text: &str) -> Result<ConfigFile> {
    ConfigFile::parse(Path::new("/etc/masclet/.env"), text)
}

fn value<'a>(c: &'a ConfigFile, key: &str) -> Option<(&'a str, usize)> {
    c.get(key).map(|e| (e.value.as_str(), e.line))
}

fn refused(text: &str, needles: &[&str]) -> String {
    let e = parse(text).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let msg = e.to_string();
    for n in needles {
        assert!(msg.contains(n), "{msg:?} lacks {n:?}");
    }
    msg
}

#[test]
fn the_original_systems_file_parses() {
    let c = parse(
        "BACKUP_ROOT=\"/backups\"\nRETENTION_DAILY=7\nRETENTION_WEEKLY=4\nRETENTION_MONTHLY=12\n\
         RETENTION_YEARLY=5\nMIN_BACKUP_SIZE=1048576  # 1MB\n",
    )
    .unwrap();
    assert_eq!(value(&c, "BACKUP_ROOT"), Some(("/backups", 1)));
    assert_eq!(value(&c, "RETENTION_YEARLY"), Some(("5", 5)));
    assert_eq!(value(&c, "MIN_BACKUP_SIZE"), Some(("1048576", 6)));
    assert_eq!(c.entries.len(), 6);
}

#[test]
fn comments_quotes_export_and_blank_lines() {
    let c = parse(
        "# masclet\n\n  export LOG_DIR=/var/log/masclet # trailing\nSMTP_PASSWORD='a # b'\n\
         NOTIFY_COMMAND=\"notify-send 'x'\"  # note\nSMTP_USER=a#b\nSMTP_HOST= # empty\n",
    )
    .unwrap();
    assert_eq!(value(&c, "LOG_DIR"), Some(("/var/log/masclet", 3)));
    assert_eq!(value(&c, "SMTP_PASSWORD"), Some(("a # b", 4)));
    assert_eq!(value(&c, "NOTIFY_COMMAND"), Some(("notify-send 'x'", 5)));
    assert_eq!(value(&c, "SMTP_USER"), Some(("a#b", 6)));
    assert_eq!(value(&c, "SMTP_HOST"), None);
}

#[test]
fn crlf_and_bom_are_accepted() {
    let c = parse("\u{feff}BACKUP_ROOT=/backups\r\nRETENTION_DAILY=7\r\n").unwrap();
    assert_eq!(value(&c, "BACKUP_ROOT"), Some(("/backups", 1)));
    assert_eq!(value(&c, "RETENTION_DAILY"), Some(("7", 2)));
}

#[test]
fn an_empty_value_leaves_the_key_unset() {
    let c = parse("RETENTION_DAILY=\nDATABASE_URL=''\n").unwrap();
    assert!(c.entries.is_empty());
}

#[test]
fn a_key_set_twice_names_both_lines() {
    refused(
        "RETENTION_DAILY=7\n\nRETENTION_DAILY=8\n",
        ["/etc/masclet/.env:3:", "lines 1 and 3"].as_slice(),
    );
}

#[test]
fn an_unknown_key_is_refused_with_the_nearest_known_one() {
    refused(
        "\nRETENTON_DAILY=7\n",
        &[".env:2:", "RETENTON_DAILY", "did you mean RETENTION_DAILY?"],
    );
    let msg = refused("PGHOST=db\n", &[".env:1:", "unknown key PGHOST"]);
    assert!(!msg.contains("did you mean"), "{msg}");
}

#[test]
fn malformed_lines_are_refused_without_echoing_them() {
    let msg = refused("SMTP_PASSWORD hunter2\n", &[".env:1:", "KEY=value"]);
    assert!(!msg.contains("hunter2"));
    refused(
        "SMTP_PASSWORD=\"hunter2\n",
        &[".env:1:", "closing \" is missing"],
    );
    refused("SMTP_USER=\"a\"b\n", &["after the closing"]);
    refused("1KEY=x\n", &["letters, digits"]);
    refused("BACKUP_ROOT=$HOME/backups\n", &["does not expand"]);
    let c = parse("SMTP_PASSWORD='pa$$'\n").unwrap();
    assert_eq!(value(&c, "SMTP_PASSWORD"), Some(("pa$$", 1)));
}

#[test]
fn values_are_checked_by_type_naming_the_line() {
    refused(
        "\nRETENTION_DAILY=seven\n",
        &[".env:2:", "RETENTION_DAILY", "whole number"],
    );
    refused("MIN_BACKUP_SIZE=1X\n", &[".env:1:", "not a size"]);
    refused("SPACE_ALERT_PERCENT=101\n", &["percentage"]);
    refused("EXPORT_MIRROR=maybe\n", &["true or false"]);
    refused("SMTP_PORT=0\n", &["port"]);
    refused("NOTIFY_EMAIL_TO=ops\n", &["mail address"]);
    refused("NOTIFY_EMAIL_TO=ops@x.org,@x.org\n", &["mail address"]);
    refused("SMTP_FROM=é\n", &["mail address"]);
    assert!(parse("NOTIFY_EMAIL_TO=ops@x.org, é@x.org\n").is_ok());
    let c = parse("MIN_FREE_SPACE=5G\nMIN_BACKUP_SIZE=10M\nEXPORT_MIRROR=yes\n").unwrap();
    assert_eq!(c.entries.len(), 3);
    assert_eq!(parse_size("5G").unwrap(), 5 << 30);
}

#[test]
fn a_passphrase_is_refused() {
    let msg = refused(
        "MASCLET_PASSWORD=hunter2\n",
        &[".env:1:", "MASCLET_PASSWORD_FILE"],
    );
    assert!(!msg.contains("hunter2"));
}

#[test]
fn secrets_are_masked() {
    let db = find("DATABASE_URL").unwrap();
    assert_eq!(
        mask(
            db,
            "postgresql://masclet:hunter2@db:5432/imperi?sslmode=require&password=x"
        ),
        "postgresql://masclet:********@db:5432/imperi?sslmode=require&password=********"
    );
    assert_eq!(mask(db, "postgresql://db/imperi"), "postgresql://db/imperi");
    let hook = find("NOTIFY_WEBHOOK_URL").unwrap();
    assert_eq!(
        mask(hook, "https://hooks.example/T0/B1/tok"),
        "https://hooks.example/********"
    );
    assert_eq!(mask(find("SMTP_PASSWORD").unwrap(), "hunter2"), "********");
    assert_eq!(mask(find("SMTP_USER").unwrap(), "ops"), "ops");
}

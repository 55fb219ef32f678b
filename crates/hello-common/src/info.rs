//! What `/info` shows about a process: where it runs, its configuration with the source of each
//! value, and its secrets as key names only: never a secret's value, nor a fingerprint of it
//! (an unkeyed hash would let anyone who can read `/info` confirm a guessed value).

use std::{
    path::{Path, PathBuf},
    time::{Instant, SystemTime},
};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where the pod's mounted ConfigMap is read from unless `*_CONFIG_DIR` says otherwise.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/config";
/// Where the pod's immutable ConfigMap is read from unless `*_IMMUTABLE_CONFIG_DIR` says otherwise.
pub const DEFAULT_IMMUTABLE_CONFIG_DIR: &str = "/etc/config-immutable";
/// Where the pod's Secret is read from unless `*_SECRET_DIR` says otherwise.
pub const DEFAULT_SECRET_DIR: &str = "/etc/secret";

/// The pod's mounted directories, a part of each service's settings (`#[serde(flatten)]`):
/// `<PREFIX>CONFIG_DIR`, `<PREFIX>IMMUTABLE_CONFIG_DIR`, `<PREFIX>SECRET_DIR`. They are read afresh
/// on every call, so a ConfigMap change the kubelet writes shows without a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountedDirs {
    /// A mounted ConfigMap: each file is a setting shown as `mounted file`.
    #[serde(default = "default_config_dir")]
    pub config_dir: PathBuf,
    /// A mounted immutable ConfigMap: each file is shown as `immutable ConfigMap`.
    #[serde(default = "default_immutable_config_dir")]
    pub immutable_config_dir: PathBuf,
    /// A mounted Secret: only its key names are shown.
    #[serde(default = "default_secret_dir")]
    pub secret_dir: PathBuf,
}

fn default_config_dir() -> PathBuf {
    PathBuf::from(DEFAULT_CONFIG_DIR)
}
fn default_immutable_config_dir() -> PathBuf {
    PathBuf::from(DEFAULT_IMMUTABLE_CONFIG_DIR)
}
fn default_secret_dir() -> PathBuf {
    PathBuf::from(DEFAULT_SECRET_DIR)
}

impl Default for MountedDirs {
    fn default() -> Self {
        Self {
            config_dir: default_config_dir(),
            immutable_config_dir: default_immutable_config_dir(),
            secret_dir: default_secret_dir(),
        }
    }
}

impl MountedDirs {
    /// The settings in the ConfigMap and the immutable ConfigMap, read now.
    pub fn config_entries(&self) -> Vec<ConfigEntry> {
        let mut entries = read_config_dir(&self.config_dir, "mounted file");
        entries.extend(read_config_dir(
            &self.immutable_config_dir,
            "immutable ConfigMap",
        ));
        entries
    }

    /// The keys of the mounted Secret, read now.
    pub fn secret_entries(&self) -> Vec<SecretEntry> {
        read_secret_dir(&self.secret_dir)
    }
}

/// One configuration value and where it came from.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq, ToSchema)]
pub struct ConfigEntry {
    /// The variable or file name.
    pub key: String,
    /// The value in force.
    pub value: String,
    /// `environment`, `default`, `mounted file` or `immutable ConfigMap`.
    pub source: String,
}

/// One secret, by name only: nothing derived from its value.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq, ToSchema)]
pub struct SecretEntry {
    /// The key (file name in the mounted Secret, or variable name).
    pub key: String,
    /// Where it came from: `mounted Secret` or `environment`.
    pub source: String,
}

/// The files of a mounted ConfigMap directory as entries, read now (so a change the kubelet
/// writes shows on the next call). Kubernetes' own `..data` links are skipped, as are
/// sub-directories and files over 64 KiB.
pub fn read_config_dir(dir: &Path, source: &str) -> Vec<ConfigEntry> {
    dir_files(dir)
        .into_iter()
        .filter_map(|(key, path)| Some((key, std::fs::read(path).ok()?)))
        .map(|(key, bytes)| ConfigEntry {
            key,
            value: String::from_utf8_lossy(&bytes).trim_end().to_owned(),
            source: source.to_owned(),
        })
        .collect()
}

/// The keys of a mounted Secret directory. Only the names: a value is never read, so a Secret
/// whose files this user may not read (Kubernetes mounts them as root, mode 0440) still shows
/// every key.
pub fn read_secret_dir(dir: &Path) -> Vec<SecretEntry> {
    dir_files(dir)
        .into_iter()
        .map(|(key, _)| SecretEntry {
            key,
            source: "mounted Secret".to_owned(),
        })
        .collect()
}

/// The regular files of a directory (following the symlinks Kubernetes mounts), by name, sorted.
fn dir_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                return None;
            }
            let path = entry.path();
            let metadata = std::fs::metadata(&path).ok()?; // follows the ConfigMap's symlinks
            if !metadata.is_file() || metadata.len() > 64 * 1024 {
                return None;
            }
            Some((name, path))
        })
        .collect();
    files.sort();
    files
}

/// Describes a settings struct: each field as `PREFIX_FIELD`, with `environment` when that
/// variable is set and `default` otherwise. Fields listed in `secret_fields` are not shown.
pub fn describe_settings<T: Serialize>(
    prefix: &str,
    settings: &T,
    secret_fields: &[&str],
) -> Vec<ConfigEntry> {
    let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(settings) else {
        return Vec::new();
    };
    fields
        .into_iter()
        .filter(|(field, _)| !secret_fields.contains(&field.as_str()))
        .map(|(field, value)| {
            let key = format!("{prefix}{}", field.to_uppercase());
            let source = if std::env::var_os(&key).is_some() {
                "environment"
            } else {
                "default"
            };
            let value = match value {
                serde_json::Value::String(text) => text,
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            };
            ConfigEntry {
                key,
                value,
                source: source.to_owned(),
            }
        })
        .collect()
}

/// When and for how long this process has been running.
#[derive(Debug, Clone, Copy)]
pub struct Uptime {
    started: Instant,
    started_at: SystemTime,
}

impl Default for Uptime {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            started_at: SystemTime::now(),
        }
    }
}

impl Uptime {
    /// Whole seconds since start.
    pub fn seconds(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// The start, RFC 3339.
    pub fn started_at(&self) -> String {
        let millis = self
            .started_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| i64::try_from(since.as_millis()).unwrap_or(0));
        crate::timestamp::Millis(millis).to_rfc3339()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_shown_by_its_key_and_source_only() {
        let entry = SecretEntry {
            key: "api-token".to_owned(),
            source: "mounted Secret".to_owned(),
        };
        let shown = serde_json::to_value(&entry).unwrap();
        assert_eq!(
            shown.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["key", "source"],
            "nothing derived from the value"
        );
    }

    #[test]
    fn mounted_directories_skip_kubernetes_internals() {
        let dir = std::env::temp_dir().join(format!("info-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("..2026_11_24")).unwrap();
        std::fs::write(dir.join("banner"), "hello\n").unwrap();
        std::fs::write(dir.join("..data"), "x").unwrap();
        let entries = read_config_dir(&dir, "mounted file");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].value, "hello");
        let secrets = read_secret_dir(&dir);
        assert_eq!(secrets[0].key, "banner");
        assert!(!serde_json::to_string(&secrets).unwrap().contains("hello"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

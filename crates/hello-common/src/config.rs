//! Reading settings from prefixed environment variables with `envy`, with errors that name the
//! variable to fix.

use serde::de::DeserializeOwned;

/// Reads `T` from the environment variables that start with `prefix` (e.g. `HELLO_`).
pub fn from_env<T: DeserializeOwned>(prefix: &str) -> anyhow::Result<T> {
    from_vars(prefix, std::env::vars())
}

/// Like [`from_env`], from the given variables (for tests).
pub fn from_vars<T: DeserializeOwned>(
    prefix: &str,
    vars: impl IntoIterator<Item = (String, String)>,
) -> anyhow::Result<T> {
    let vars: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(name, _)| name.starts_with(prefix))
        .collect();
    let error = match envy::prefixed(prefix).from_iter::<_, T>(vars.clone()) {
        Ok(settings) => return Ok(settings),
        Err(error) => error,
    };
    if let envy::Error::MissingValue(field) = error {
        anyhow::bail!("{prefix}{} must be set", field.to_uppercase());
    }
    // envy's messages do not always say which variable was wrong: find the one whose removal
    // makes the rest parse, and name it.
    for (index, (name, value)) in vars.iter().enumerate() {
        let others = vars
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != index)
            .map(|(_, pair)| pair.clone());
        if envy::prefixed(prefix).from_iter::<_, T>(others).is_ok() {
            anyhow::bail!("{name}={value:?} is not valid: {error}");
        }
    }
    anyhow::bail!("the {prefix}* environment variables are not valid: {error}")
}

/// Fails with a message naming `variable` unless `valid`.
pub fn ensure(valid: bool, variable: &str, requirement: &str) -> anyhow::Result<()> {
    anyhow::ensure!(valid, "{variable} {requirement}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Example {
        #[serde(default = "default_listen")]
        listen: SocketAddr,
        #[serde(default)]
        cap: u64,
    }

    fn default_listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 1))
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let example: Example = from_vars("X_", vars(&[("OTHER", "1")])).unwrap();
        assert_eq!(example.listen, default_listen());
        assert_eq!(example.cap, 0);
    }

    #[test]
    fn errors_name_the_bad_variable() {
        let error = from_vars::<Example>("X_", vars(&[("X_CAP", "7"), ("X_LISTEN", "nowhere")]))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("X_LISTEN=\"nowhere\" is not valid"),
            "{error}"
        );
        let error = from_vars::<Example>("X_", vars(&[("X_CAP", "many")]))
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("X_CAP=\"many\""), "{error}");
    }
}

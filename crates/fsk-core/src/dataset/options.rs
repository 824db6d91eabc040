//! Typed storage options for S3, GCS and Azure: the Rust API's counterpart of
//! `--storage-option key=value`. Each converts into [`StorageOptions`], whose keys are
//! object_store's configuration keys, so the two ways of configuring a store cannot drift.
//!
//! ```
//! use fsk_core::dataset::storage::{Location, S3Options, StorageOptions};
//!
//! let options: StorageOptions = S3Options::new()
//!     .endpoint("http://127.0.0.1:9000")
//!     .region("us-east-1")
//!     .allow_http(true)
//!     .into();
//! let location = Location::parse_with_options("s3://bucket/sales", &options)?;
//! assert_eq!(location.root().as_ref(), "sales");
//! # Ok::<(), fsk_core::Error>(())
//! ```

use crate::error::{Error, Result};
use std::collections::BTreeMap;

/// Explicit storage options (`--storage-option key=value`), applied after the environment.
///
/// Keys are object_store's configuration keys for the store's kind, for example
/// `aws_endpoint`, `aws_region`, `aws_access_key_id`, `aws_allow_http`,
/// `google_service_account`, `azure_storage_account_name`. Short forms without the prefix
/// (`endpoint`, `region`, `allow_http`) are accepted as object_store accepts them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StorageOptions {
    options: BTreeMap<String, String>,
}

impl StorageOptions {
    /// No explicit options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one option.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.options.insert(key.into(), value.into());
        self
    }

    /// Parses `KEY=VALUE` pairs, as given on the command line.
    pub fn parse_pairs<I, S>(pairs: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut options = Self::new();
        for pair in pairs {
            let pair = pair.as_ref();
            let Some((key, value)) = pair.split_once('=') else {
                return Err(Error::invalid_argument(
                    "storage option",
                    pair,
                    "expected KEY=VALUE",
                ));
            };
            if key.trim().is_empty() {
                return Err(Error::invalid_argument(
                    "storage option",
                    pair,
                    "the key is empty",
                ));
            }
            options
                .options
                .insert(key.trim().to_string(), value.to_string());
        }
        Ok(options)
    }

    /// The options as key/value pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.options.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether there are no options.
    pub fn is_empty(&self) -> bool {
        self.options.is_empty()
    }
}

fn put(options: &mut StorageOptions, key: &str, value: &Option<String>) {
    if let Some(value) = value {
        *options = std::mem::take(options).with(key, value.clone());
    }
}

/// Options for `s3://` datasets (Amazon S3 and S3-compatible servers). Unset fields fall back
/// to the `AWS_*` environment variables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct S3Options {
    /// Endpoint URL, for S3-compatible servers (`aws_endpoint`).
    pub endpoint: Option<String>,
    /// Region (`aws_region`).
    pub region: Option<String>,
    /// Access key id (`aws_access_key_id`).
    pub access_key_id: Option<String>,
    /// Secret access key (`aws_secret_access_key`).
    pub secret_access_key: Option<String>,
    /// Session token for temporary credentials (`aws_session_token`).
    pub session_token: Option<String>,
    /// Allow plain `http://` endpoints (`aws_allow_http`).
    pub allow_http: Option<bool>,
    /// Send unsigned requests, for public buckets (`aws_skip_signature`).
    pub anonymous: Option<bool>,
    /// Path-style requests (`http://host/bucket/key`) when `false`
    /// (`aws_virtual_hosted_style_request`).
    pub virtual_hosted_style: Option<bool>,
}

macro_rules! setters {
    ($ty:ty { $($(#[$doc:meta])* $field:ident : $kind:ident),* $(,)? }) => {
        impl $ty {
            /// No options: everything from the environment.
            pub fn new() -> Self {
                Self::default()
            }
            $(setters!(@one $(#[$doc])* $field $kind);)*
        }
    };
    (@one $(#[$doc:meta])* $field:ident string) => {
        $(#[$doc])*
        pub fn $field(mut self, value: impl Into<String>) -> Self {
            self.$field = Some(value.into());
            self
        }
    };
    (@one $(#[$doc:meta])* $field:ident bool) => {
        $(#[$doc])*
        pub fn $field(mut self, value: bool) -> Self {
            self.$field = Some(value);
            self
        }
    };
}

setters!(S3Options {
    /// Sets the endpoint URL.
    endpoint: string,
    /// Sets the region.
    region: string,
    /// Sets the access key id.
    access_key_id: string,
    /// Sets the secret access key.
    secret_access_key: string,
    /// Sets the session token.
    session_token: string,
    /// Allows or forbids `http://` endpoints.
    allow_http: bool,
    /// Sends unsigned requests (public buckets).
    anonymous: bool,
    /// Chooses virtual-hosted-style (`true`) or path-style (`false`) requests.
    virtual_hosted_style: bool,
});

fn flag(value: Option<bool>) -> Option<String> {
    value.map(|b| b.to_string())
}

impl From<S3Options> for StorageOptions {
    fn from(o: S3Options) -> Self {
        let mut out = StorageOptions::new();
        put(&mut out, "aws_endpoint", &o.endpoint);
        put(&mut out, "aws_region", &o.region);
        put(&mut out, "aws_access_key_id", &o.access_key_id);
        put(&mut out, "aws_secret_access_key", &o.secret_access_key);
        put(&mut out, "aws_session_token", &o.session_token);
        put(&mut out, "aws_allow_http", &flag(o.allow_http));
        put(&mut out, "aws_skip_signature", &flag(o.anonymous));
        put(
            &mut out,
            "aws_virtual_hosted_style_request",
            &flag(o.virtual_hosted_style),
        );
        out
    }
}

/// Options for `gs://` datasets. Unset fields fall back to the `GOOGLE_*` environment
/// variables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcsOptions {
    /// Path of a service account JSON file (`google_service_account`).
    pub service_account_path: Option<String>,
    /// The service account JSON itself (`google_service_account_key`).
    pub service_account_key: Option<String>,
    /// Base URL, for emulators and private endpoints (`google_base_url`).
    pub endpoint: Option<String>,
    /// Send unsigned requests, for public buckets (`google_skip_signature`).
    pub anonymous: Option<bool>,
}

setters!(GcsOptions {
    /// Sets the service account file path.
    service_account_path: string,
    /// Sets the service account key (JSON).
    service_account_key: string,
    /// Sets the base URL.
    endpoint: string,
    /// Sends unsigned requests (public buckets).
    anonymous: bool,
});

impl From<GcsOptions> for StorageOptions {
    fn from(o: GcsOptions) -> Self {
        let mut out = StorageOptions::new();
        put(&mut out, "google_service_account", &o.service_account_path);
        put(
            &mut out,
            "google_service_account_key",
            &o.service_account_key,
        );
        put(&mut out, "google_base_url", &o.endpoint);
        put(&mut out, "google_skip_signature", &flag(o.anonymous));
        out
    }
}

/// Options for `az://` datasets (Azure Blob Storage and ADLS Gen2). Unset fields fall back to
/// the `AZURE_*` environment variables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AzureOptions {
    /// Storage account name (`azure_storage_account_name`).
    pub account: Option<String>,
    /// Storage account key (`azure_storage_account_key`).
    pub access_key: Option<String>,
    /// Shared access signature, with or without the leading `?` (`azure_storage_sas_key`).
    pub sas_token: Option<String>,
    /// Blob endpoint URL, for Azurite and private endpoints (`azure_storage_endpoint`).
    pub endpoint: Option<String>,
    /// Use the Azurite emulator's well-known account (`azure_storage_use_emulator`).
    pub use_emulator: Option<bool>,
}

setters!(AzureOptions {
    /// Sets the account name.
    account: string,
    /// Sets the account key.
    access_key: string,
    /// Sets the shared access signature.
    sas_token: string,
    /// Sets the blob endpoint URL.
    endpoint: string,
    /// Uses the Azurite emulator.
    use_emulator: bool,
});

impl AzureOptions {
    /// Options from an Azure storage connection string
    /// (`AccountName=..;AccountKey=..;BlobEndpoint=..;SharedAccessSignature=..`, or
    /// `UseDevelopmentStorage=true`). Unknown fields such as `DefaultEndpointsProtocol` and
    /// `EndpointSuffix` are accepted; a field without `=` is a typed error.
    pub fn from_connection_string(connection: &str) -> Result<Self> {
        let mut options = AzureOptions::default();
        let mut protocol = None;
        let mut suffix = None;
        for field in connection
            .split(';')
            .map(str::trim)
            .filter(|f| !f.is_empty())
        {
            let Some((key, value)) = field.split_once('=') else {
                return Err(Error::invalid_argument(
                    "azure connection string",
                    field,
                    "expected Key=Value fields separated by ';'",
                ));
            };
            match key.trim() {
                "AccountName" => options.account = Some(value.to_string()),
                "AccountKey" => options.access_key = Some(value.to_string()),
                "SharedAccessSignature" => options.sas_token = Some(value.to_string()),
                "BlobEndpoint" => options.endpoint = Some(value.to_string()),
                "UseDevelopmentStorage" => {
                    options.use_emulator = Some(value.eq_ignore_ascii_case("true"))
                }
                "DefaultEndpointsProtocol" => protocol = Some(value.to_string()),
                "EndpointSuffix" => suffix = Some(value.to_string()),
                _ => {}
            }
        }
        if options.endpoint.is_none()
            && let (Some(account), Some(suffix)) = (&options.account, &suffix)
            && suffix != "core.windows.net"
        {
            let protocol = protocol.as_deref().unwrap_or("https");
            options.endpoint = Some(format!("{protocol}://{account}.blob.{suffix}"));
        }
        Ok(options)
    }
}

impl From<AzureOptions> for StorageOptions {
    fn from(o: AzureOptions) -> Self {
        let mut out = StorageOptions::new();
        put(&mut out, "azure_storage_account_name", &o.account);
        put(&mut out, "azure_storage_account_key", &o.access_key);
        let sas = o.sas_token.map(|s| s.trim_start_matches('?').to_string());
        put(&mut out, "azure_storage_sas_key", &sas);
        put(&mut out, "azure_storage_endpoint", &o.endpoint);
        put(
            &mut out,
            "azure_storage_use_emulator",
            &flag(o.use_emulator),
        );
        if o.endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"))
        {
            out = out.with("azure_allow_http", "true");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::storage::{Location, StoreKind};

    fn pairs(options: StorageOptions) -> Vec<(String, String)> {
        options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn s3_options_become_object_store_keys() {
        let options: StorageOptions = S3Options::new()
            .endpoint("http://127.0.0.1:9000")
            .region("eu-west-1")
            .access_key_id("AK")
            .secret_access_key("SK")
            .session_token("TOK")
            .allow_http(true)
            .anonymous(false)
            .virtual_hosted_style(false)
            .into();
        let pairs = pairs(options.clone());
        assert!(pairs.contains(&("aws_session_token".into(), "TOK".into())));
        assert!(pairs.contains(&("aws_skip_signature".into(), "false".into())));
        assert_eq!(pairs.len(), 8);
        let loc = Location::parse_with_options("s3://bucket/a/b", &options).unwrap();
        assert_eq!(loc.kind(), StoreKind::S3);
        assert_eq!(loc.root().as_ref(), "a/b");
        assert!(StorageOptions::from(S3Options::new()).is_empty());
    }

    #[test]
    fn gcs_options_build_a_store() {
        let key = r#"{"private_key": "", "private_key_id": "", "client_email": "x@y"}"#;
        let options: StorageOptions = GcsOptions::new()
            .service_account_key(key)
            .endpoint("http://127.0.0.1:4443")
            .into();
        assert_eq!(
            pairs(options.clone()),
            vec![
                (
                    "google_base_url".to_string(),
                    "http://127.0.0.1:4443".to_string()
                ),
                ("google_service_account_key".to_string(), key.to_string()),
            ]
        );
        // The fake key is rejected when the store is built, by the GCS credential loader,
        // which proves the option reached it.
        let err = Location::parse_with_options("gs://bucket/ds", &options).unwrap_err();
        assert!(err.to_string().contains("pem"), "{err}");
        let anonymous: StorageOptions = GcsOptions::new()
            .anonymous(true)
            .endpoint("http://127.0.0.1:4443")
            .into();
        let loc = Location::parse_with_options("gs://bucket/ds", &anonymous).unwrap();
        assert_eq!((loc.kind(), loc.root().as_ref()), (StoreKind::Gcs, "ds"));
        let path = GcsOptions::new().service_account_path("/secrets/sa.json");
        assert_eq!(
            pairs(path.into()),
            vec![(
                "google_service_account".to_string(),
                "/secrets/sa.json".to_string()
            )]
        );
    }

    #[test]
    fn azure_connection_strings_are_parsed() {
        let parsed = AzureOptions::from_connection_string(
            "DefaultEndpointsProtocol=http;AccountName=devacct;AccountKey=a2V5;\
             BlobEndpoint=http://127.0.0.1:10000/devacct;",
        )
        .unwrap();
        assert_eq!(parsed.account.as_deref(), Some("devacct"));
        assert_eq!(parsed.access_key.as_deref(), Some("a2V5"));
        assert_eq!(
            parsed.endpoint.as_deref(),
            Some("http://127.0.0.1:10000/devacct")
        );
        let options: StorageOptions = parsed.into();
        assert!(pairs(options.clone()).contains(&("azure_allow_http".into(), "true".into())));
        let loc = Location::parse_with_options("az://container/ds", &options).unwrap();
        assert_eq!((loc.kind(), loc.root().as_ref()), (StoreKind::Azure, "ds"));

        let sas = AzureOptions::from_connection_string(
            "AccountName=acct;SharedAccessSignature=?sv=2024&sig=abc;EndpointSuffix=core.chinacloudapi.cn",
        )
        .unwrap();
        assert_eq!(
            sas.endpoint.as_deref(),
            Some("https://acct.blob.core.chinacloudapi.cn")
        );
        let sas_pairs = pairs(sas.into());
        assert!(sas_pairs.contains(&("azure_storage_sas_key".into(), "sv=2024&sig=abc".into())));

        let emulator = AzureOptions::from_connection_string("UseDevelopmentStorage=true").unwrap();
        assert_eq!(emulator.use_emulator, Some(true));
        let err = AzureOptions::from_connection_string("AccountName=a;garbage").unwrap_err();
        assert!(err.to_string().contains("garbage"), "{err}");
    }
}

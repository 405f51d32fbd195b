//! Aurora DSQL IAM auth tokens: a SigV4 query presign of `GET https://<host>/?Action=...`
//! computed locally by aws-sdk-dsql's `AuthTokenGenerator`. No network call is made here; the
//! credential chain may read files, the environment, or (for instance roles) the metadata service.
//!
//! Role `admin` signs `DbConnectAdmin`; any other role signs `DbConnect`.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_dsql::auth_token::{AuthTokenGenerator, Config as TokenConfig};

use crate::error::{Error, Result};
use crate::secret::Secret;

/// What to sign.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    pub endpoint: String,
    pub region: String,
    pub admin: bool,
    pub expires_in: u64,
    /// The credentials profile named by the user, for error messages.
    pub profile: Option<String>,
}

impl TokenSpec {
    pub fn action(&self) -> &'static str {
        if self.admin {
            "DbConnectAdmin"
        } else {
            "DbConnect"
        }
    }
}

/// Everything `dsqlsh token` and `token()` need, resolved from flags, options and environment.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub spec: TokenSpec,
    pub user: String,
    pub profile: Option<String>,
}

/// Explicit values (flags or script options) first, then the environment, then defaults:
/// user `admin`, admin token when the user is `admin`, region from the hostname.
pub fn resolve_request(
    endpoint: Option<String>,
    region: Option<String>,
    user: Option<String>,
    admin: Option<bool>,
    expires_in: u64,
    profile: Option<String>,
    env: &dyn crate::config::Env,
) -> Result<TokenRequest> {
    use crate::config::{dsql_region_from_host, is_cluster_id, parse_token_secs};
    let endpoint = endpoint
        .filter(|e| !e.trim().is_empty())
        .or_else(|| env.first(&["DSQL_ENDPOINT", "DB_HOST"]))
        .ok_or_else(|| {
            Error::Usage("token: no endpoint: pass --endpoint or set `DSQL_ENDPOINT`".into())
        })?;
    crate::config::reject_url_as_endpoint(&endpoint)?;
    crate::config::check_region_matches(&endpoint, region.as_deref())?;
    let region = region
        .filter(|r| !r.trim().is_empty())
        .or_else(|| dsql_region_from_host(&endpoint))
        .or_else(|| env.first(&["AWS_REGION", "AWS_DEFAULT_REGION"]))
        .ok_or_else(|| {
            Error::Config(format!(
                "no AWS region for `{endpoint}`: it is not a DSQL hostname \
                 (<id>.dsql.<region>.on.aws), so pass --region or set `AWS_REGION`"
            ))
        })?;
    let endpoint = if is_cluster_id(&endpoint) {
        format!("{endpoint}.dsql.{region}.on.aws")
    } else {
        endpoint.trim_end_matches('.').to_ascii_lowercase()
    };
    crate::config::check_dsql_names(&endpoint, &region)?;
    let expires_in = parse_token_secs(&expires_in.to_string())?;
    let user = user
        .or_else(|| env.first(&["DB_USER"]))
        .unwrap_or_else(|| "admin".into());
    let admin = admin.unwrap_or(user == "admin");
    Ok(TokenRequest {
        spec: TokenSpec {
            endpoint,
            region,
            admin,
            expires_in,
            profile: profile.clone().or_else(|| env.first(&["AWS_PROFILE"])),
        },
        user,
        profile: profile.or_else(|| env.first(&["AWS_PROFILE"])),
    })
}

/// The standard AWS configuration for `region`: the default credential chain, or, when a
/// profile is named (--profile or AWS_PROFILE), that profile's credentials only, so that keys
/// in the environment cannot silently stand in for the profile asked for.
pub async fn load_sdk_config(profile: Option<&str>, region: &str) -> SdkConfig {
    let mut loader =
        aws_config::defaults(BehaviorVersion::latest()).region(Region::new(region.to_string()));
    if let Some(p) = profile {
        let credentials = aws_config::profile::ProfileFileCredentialsProvider::builder()
            .profile_name(p)
            .build();
        loader = loader.profile_name(p).credentials_provider(credentials);
    }
    loader.load().await
}

/// Sign a token with the credentials and clock of `sdk`.
pub async fn generate(sdk: &SdkConfig, spec: &TokenSpec) -> Result<Secret> {
    let config = TokenConfig::builder()
        .hostname(&spec.endpoint)
        .region(Region::new(spec.region.clone()))
        .expires_in(spec.expires_in)
        .build()
        .map_err(|e| Error::Auth(format!("invalid token settings: {e}")))?;
    // The names were checked (config::check_dsql_names), which is what keeps the generator
    // from panicking on a URI it cannot build.
    crate::config::check_dsql_names(&spec.endpoint, &spec.region)?;
    let generator = AuthTokenGenerator::new(config);
    let token = if spec.admin {
        generator.db_connect_admin_auth_token(sdk).await
    } else {
        generator.db_connect_auth_token(sdk).await
    };
    token
        .map(|t| Secret::new(t.as_str()))
        .map_err(|e| credentials_error(e.as_ref(), spec.profile.as_deref()))
}

/// Explain a signing failure; almost always the credential chain found nothing.
fn credentials_error(e: &(dyn std::error::Error + 'static), profile: Option<&str>) -> Error {
    if let Some(p) = profile {
        return Error::Auth(format!(
            "no usable AWS credentials in profile `{p}` (named by --profile or `AWS_PROFILE`): \
             check that it exists in ~/.aws/config or ~/.aws/credentials ({})",
            chain(e)
        ));
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(ce) = err.downcast_ref::<CredentialsError>() {
            // The default chain ends with the instance metadata service, so on a machine
            // with no credentials the last error is usually IMDS's (a timeout, a refusal):
            // say what to set first, and keep the chain's own words as the detail.
            return match ce {
                CredentialsError::CredentialsNotLoaded(_) => no_credentials(),
                other => Error::Auth(format!(
                    "{} (the credential chain said: {})",
                    no_credentials_text(),
                    chain(other)
                )),
            };
        }
        source = err.source();
    }
    let text = chain(e);
    if text.contains("credentials") {
        no_credentials()
    } else {
        Error::Auth(text)
    }
}

pub fn no_credentials() -> Error {
    Error::Auth(no_credentials_text().into())
}

fn no_credentials_text() -> &'static str {
    "no AWS credentials found: set `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` \
     (and `AWS_SESSION_TOKEN` for temporary credentials), or name a profile from \
     ~/.aws/config with --profile or `AWS_PROFILE`"
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::provider::SharedCredentialsProvider;
    use aws_credential_types::Credentials;
    use aws_smithy_async::time::{SharedTimeSource, StaticTimeSource};
    use std::time::{Duration, UNIX_EPOCH};

    fn frozen_config(v: &serde_json::Value) -> SdkConfig {
        let input = &v["input"];
        let creds = Credentials::new(
            input["access_key_id"].as_str().unwrap(),
            input["secret_access_key"].as_str().unwrap(),
            input["session_token"].as_str().map(String::from),
            None,
            "test-vector",
        );
        let time = UNIX_EPOCH + Duration::from_secs(input["time_unix"].as_u64().unwrap());
        SdkConfig::builder()
            .credentials_provider(SharedCredentialsProvider::new(creds))
            .time_source(SharedTimeSource::new(StaticTimeSource::new(time)))
            .region(Region::new(input["region"].as_str().unwrap().to_string()))
            .behavior_version(BehaviorVersion::latest())
            .build()
    }

    /// Every vector in shared/testdata, reproduced byte for byte with the clock frozen.
    #[tokio::test]
    async fn reproduces_the_shared_token_vectors() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/dsql_token_vectors.json"
        );
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let vectors = doc["vectors"].as_array().unwrap();
        assert!(vectors.len() >= 3, "expected the shared vectors");
        for v in vectors {
            let input = &v["input"];
            let spec = TokenSpec {
                endpoint: input["hostname"].as_str().unwrap().into(),
                region: input["region"].as_str().unwrap().into(),
                admin: input["action"] == "DbConnectAdmin",
                expires_in: input["expires_in_secs"].as_u64().unwrap(),
                profile: None,
            };
            let token = generate(&frozen_config(v), &spec).await.unwrap();
            assert_eq!(
                token.expose(),
                v["output"]["token_aws_sdk_rust_order"].as_str().unwrap(),
                "vector {}",
                v["name"]
            );
        }
    }

    /// A provider failure at the end of the default chain (IMDS refusing or timing out on a
    /// machine with no credentials) still says which variables and option to set.
    #[test]
    fn chain_failure_names_the_variables_and_keeps_the_cause() {
        let e = CredentialsError::provider_error("failed to load IMDS session token");
        let err = credentials_error(&e, None).to_string();
        assert_eq!(
            err,
            format!(
                "token: {} (the credential chain said: an error occurred while loading \
                 credentials: failed to load IMDS session token)",
                no_credentials_text()
            )
        );
    }

    #[tokio::test]
    async fn missing_credentials_names_the_variables() {
        let sdk = SdkConfig::builder()
            .region(Region::new("us-east-1"))
            .time_source(SharedTimeSource::new(StaticTimeSource::new(UNIX_EPOCH)))
            .behavior_version(BehaviorVersion::latest())
            .build();
        let spec = TokenSpec {
            endpoint: "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws".into(),
            region: "us-east-1".into(),
            admin: true,
            expires_in: 900,
            profile: None,
        };
        let err = generate(&sdk, &spec).await.unwrap_err().to_string();
        assert!(
            err.contains("AWS_ACCESS_KEY_ID") && err.contains("--profile"),
            "{err}"
        );
    }
}

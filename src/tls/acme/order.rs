//! One ACME order for one domain (RFC 8555 §7.4): new order, answer the chosen challenge,
//! wait for validation, finalize with a CSR made here (new P-256 key each time), download the
//! chain. The protocol (JWS, nonces, polling) is instant-acme's.

use super::challenge::{Http01Tokens, Pending, TlsAlpnChallenges};
use super::{AcmeError, ChallengeKind};
use instant_acme::{
    Account, AuthorizationStatus, Identifier, NewOrder, Order, OrderStatus, RetryPolicy,
};
use std::sync::Arc;
use std::time::Duration;

/// Polling of order and certificate: 250 ms, then ×1.5, for up to 2 minutes. Pebble and
/// Let's Encrypt usually validate within seconds; `Retry-After` from the CA is honoured.
fn policy() -> RetryPolicy {
    RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .backoff(1.5)
        .timeout(Duration::from_secs(120))
}

/// What an order produced: PEM chain (leaf first) and PEM PKCS#8 key.
pub(super) struct Issued {
    pub chain_pem: String,
    pub key_pem: String,
}

pub(super) async fn obtain(
    account: &Account,
    domain: &str,
    kind: ChallengeKind,
    http01: &Arc<Http01Tokens>,
    tls_alpn: &Arc<TlsAlpnChallenges>,
) -> Result<Issued, AcmeError> {
    let proto = |step: &'static str| {
        move |source: instant_acme::Error| AcmeError::Protocol {
            domain: domain.to_string(),
            step,
            source,
        }
    };
    let invalid = |reason: String| AcmeError::Validation {
        domain: domain.to_string(),
        reason,
    };
    let ids = [Identifier::Dns(domain.to_string())];
    let mut order = account
        .new_order(&NewOrder::new(&ids))
        .await
        .map_err(proto("place the order"))?;

    // Answers stay up until this function returns (validation done, or failed).
    let mut pending: Vec<Pending> = Vec::new();
    {
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.map_err(proto("fetch the authorization"))?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                // Reused from an earlier order of this account.
                AuthorizationStatus::Valid => continue,
                other => return Err(invalid(format!("the authorization is {other:?}"))),
            }
            let mut challenge = authz
                .challenge(kind.acme_type())
                .ok_or_else(|| invalid(format!("the CA offers no {kind} challenge")))?;
            let key_auth = challenge.key_authorization();
            pending.push(match kind {
                ChallengeKind::Http01 => http01.insert(&challenge.token, key_auth.as_str())?,
                ChallengeKind::TlsAlpn01 => tls_alpn.insert(domain, key_auth.as_str())?,
            });
            challenge
                .set_ready()
                .await
                .map_err(proto("answer the challenge"))?;
        }
    }

    let status = match order.poll_ready(&policy()).await {
        Ok(status) => status,
        Err(instant_acme::Error::Api(problem)) => {
            return Err(invalid(format!(
                "{kind} validation failed: {}",
                why_invalid(&mut order)
                    .await
                    .unwrap_or_else(|| problem.to_string())
            )))
        }
        Err(e) => return Err(proto("wait for validation")(e)),
    };
    if status != OrderStatus::Ready {
        let why = why_invalid(&mut order)
            .await
            .unwrap_or_else(|| format!("the order is {status:?}"));
        return Err(invalid(format!("{kind} validation failed: {why}")));
    }
    drop(pending);

    let key_err = |source| AcmeError::Key {
        domain: domain.to_string(),
        source,
    };
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(key_err)?;
    let mut params = rcgen::CertificateParams::new(vec![domain.to_string()]).map_err(key_err)?;
    // The CA takes the names from subjectAltName; an empty subject is what Let's Encrypt
    // documents for CSRs.
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&key).map_err(key_err)?;
    order
        .finalize_csr(csr.der())
        .await
        .map_err(proto("finalize the order"))?;
    let chain_pem = order
        .poll_certificate(&policy())
        .await
        .map_err(proto("download the certificate"))?;
    Ok(Issued {
        chain_pem,
        key_pem: key.serialize_pem(),
    })
}

/// The CA's own words on why validation failed: the first challenge error it reports.
async fn why_invalid(order: &mut Order) -> Option<String> {
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        let Ok(state) = authz.refresh().await else {
            continue;
        };
        for c in &state.challenges {
            if let Some(err) = &c.error {
                return Some(err.to_string());
            }
        }
    }
    None
}

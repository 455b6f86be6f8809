//! Checking an ID token (OpenID Connect Core §3.1.3.7) and reading the
//! person out of it: signature by a key of the provider's JWKS, `iss`,
//! `aud` (and `azp` when there are several audiences), `nonce`, `exp`,
//! `nbf` and `iat` with a small leeway, then the configured e-mail and
//! groups claims. No I/O: the caller passes the keys.

use std::time::Duration;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::{Claims, OidcError};

/// The signature algorithms accepted for ID tokens: asymmetric only (a
/// client secret never signs an ID token here; `none` is never accepted).
pub(super) const ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// What an ID token must match.
pub(super) struct Expected<'a> {
    /// The issuer (exactly as discovered).
    pub issuer: &'a str,
    /// The client id (an audience, and `azp` when present).
    pub client_id: &'a str,
    /// The nonce of the authorization request.
    pub nonce: &'a str,
    /// Clock skew allowed on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
}

/// The header's `kid` (if any) and algorithm, checked against
/// [`ALGORITHMS`].
pub(super) fn header(token: &str) -> Result<(Option<String>, Algorithm), OidcError> {
    let h = jsonwebtoken::decode_header(token)
        .map_err(|e| OidcError::InvalidToken(format!("unreadable ID token header: {e}")))?;
    if !ALGORITHMS.contains(&h.alg) {
        return Err(OidcError::InvalidToken(format!(
            "ID tokens signed with {:?} are not accepted",
            h.alg
        )));
    }
    Ok((h.kid, h.alg))
}

/// The key of `keys` that signs a token with `kid` (or, without a `kid`,
/// the only signing key), if any.
pub(super) fn pick<'a>(keys: &'a [Jwk], kid: Option<&str>) -> Option<&'a Jwk> {
    match kid {
        Some(kid) => keys
            .iter()
            .find(|k| k.common.key_id.as_deref() == Some(kid)),
        None if keys.len() == 1 => keys.first(),
        None => None,
    }
}

/// The claims of `token` verified with `key` against `expected`.
pub(super) fn verify(
    token: &str,
    alg: Algorithm,
    key: &Jwk,
    expected: &Expected<'_>,
) -> Result<Map<String, Value>, OidcError> {
    let decoding = DecodingKey::from_jwk(key)
        .map_err(|e| OidcError::InvalidToken(format!("the provider's key is unusable: {e}")))?;
    let mut v = Validation::new(alg);
    v.leeway = expected.leeway.as_secs();
    v.validate_exp = true;
    v.validate_nbf = true;
    v.set_issuer(&[expected.issuer]);
    v.set_audience(&[expected.client_id]);
    v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &decoding, &v).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind as K;
        OidcError::InvalidToken(match e.kind() {
            K::InvalidSignature => "the ID token's signature does not verify".into(),
            K::ExpiredSignature => "the ID token has expired".into(),
            K::ImmatureSignature => "the ID token is not valid yet (nbf)".into(),
            K::InvalidIssuer => format!("the ID token is not from {}", expected.issuer),
            K::InvalidAudience => format!(
                "the ID token is not meant for this client ({})",
                expected.client_id
            ),
            K::MissingRequiredClaim(c) => format!("the ID token has no {c} claim"),
            _ => format!("the ID token does not verify: {e}"),
        })
    })?;
    let claims = data.claims;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .unwrap_or(i64::MAX);
    if iat > now + expected.leeway.as_secs() as i64 {
        return Err(OidcError::InvalidToken(
            "the ID token was issued in the future (iat)".into(),
        ));
    }
    let several = claims
        .get("aud")
        .and_then(Value::as_array)
        .is_some_and(|a| a.len() > 1);
    match claims.get("azp").and_then(Value::as_str) {
        Some(azp) if azp != expected.client_id => {
            return Err(OidcError::InvalidToken(format!(
                "the ID token was issued to another party (azp {azp:?})"
            )));
        }
        None if several => {
            return Err(OidcError::InvalidToken(
                "the ID token has several audiences and no azp".into(),
            ));
        }
        _ => {}
    }
    if claims.get("nonce").and_then(Value::as_str) != Some(expected.nonce) {
        return Err(OidcError::InvalidToken(
            "the ID token's nonce is not the one of this sign-in".into(),
        ));
    }
    Ok(claims)
}

/// The claim `name` of `claims`: the key as it is (`https://x/groups`),
/// else a dotted path into nested objects (`realm_access.roles`).
fn claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    let mut parts = name.split('.');
    let mut v = claims.get(parts.next()?)?;
    for p in parts {
        v = v.as_object()?.get(p)?;
    }
    Some(v)
}

/// The person of verified `claims`: e-mail (claim `email_claim`; must be
/// verified when `require_verified`), display name and groups (claim
/// `groups_claim`: a list of strings or one string; none if absent).
///
/// ```
/// # use bunting_origin::oidc::person;
/// let claims = serde_json::json!({"email": "a@x.io", "email_verified": true, "name": "A",
///     "realm_access": {"roles": ["sre"]}}).as_object().unwrap().clone();
/// let p = person(&claims, "email", "realm_access.roles", true).unwrap();
/// assert_eq!((p.email.as_str(), p.name.as_str(), p.groups.clone()), ("a@x.io", "A", vec!["sre".to_string()]));
/// assert!(person(&claims, "upn", "groups", false).is_err());
/// ```
pub fn person(
    claims: &Map<String, Value>,
    email_claim: &str,
    groups_claim: &str,
    require_verified: bool,
) -> Result<Claims, OidcError> {
    let email = claim(claims, email_claim)
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty())
        .ok_or_else(|| {
            OidcError::InvalidToken(format!(
                "the ID token has no {email_claim:?} claim (the e-mail claim; ask the provider \
                 for it with the `email` scope, or configure another claim)"
            ))
        })?;
    if require_verified {
        let verified = match claims.get("email_verified") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s == "true",
            _ => false,
        };
        if !verified {
            return Err(OidcError::InvalidToken(format!(
                "the provider has not verified {email} (email_verified)"
            )));
        }
    }
    let groups = match claim(claims, groups_claim) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|g| g.as_str().map(str::to_string))
            .collect(),
        Some(Value::String(g)) => vec![g.clone()],
        _ => Vec::new(),
    };
    let name = ["name", "preferred_username"]
        .iter()
        .find_map(|c| claims.get(*c).and_then(Value::as_str))
        .unwrap_or(email);
    Ok(Claims {
        email: email.to_string(),
        name: name.to_string(),
        groups,
        subject: claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwk(kid: &str) -> Jwk {
        serde_json::from_value(serde_json::json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
        }))
        .unwrap()
    }

    #[test]
    fn keys_are_picked_by_kid_or_alone() {
        let keys = [jwk("a"), jwk("b")];
        assert_eq!(
            pick(&keys, Some("b")).unwrap().common.key_id.as_deref(),
            Some("b")
        );
        assert!(
            pick(&keys, Some("c")).is_none(),
            "an unknown kid makes the caller refetch"
        );
        assert!(
            pick(&keys, None).is_none(),
            "without a kid, only a single key is used"
        );
        assert!(pick(&keys[..1], None).is_some());
    }

    #[test]
    fn symmetric_and_unsigned_tokens_are_refused() {
        // {"alg":"HS256","typ":"JWT"} . {} . signature
        let hs = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.c2ln";
        assert!(header(hs).unwrap_err().to_string().contains("HS256"));
        // {"alg":"none"} . {} .
        assert!(header("eyJhbGciOiJub25lIn0.e30.").is_err());
    }
}

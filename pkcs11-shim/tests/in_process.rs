//! The module loaded in-process through the `cryptoki` crate, and its C entry points called
//! directly with NULL pointers and short buffers.
//!
//! The module reads `SEGEL_KEYSTORE_DIRS` at `C_Initialize`, and setting the environment of a
//! running multi-threaded test process is unsound; so the one normal test here re-runs this test
//! binary as a child with the environment set, and the child runs the `#[ignore]`d `child_*`
//! tests on one thread.
#![allow(unsafe_code, clippy::expect_used)]

mod common;

use common::{PIN, fixtures, module_path};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use std::path::PathBuf;
use std::process::Command;

const CHILD_TESTS: usize = 8;

#[test]
fn in_process_suite_passes_in_a_child_process_with_a_private_keystore() {
    let f = fixtures();
    let scratch = tempfile::tempdir().expect("tempdir");
    let conf = scratch.path().join("keystores.conf");
    std::fs::write(&conf, "removable-media = no\n").expect("write");
    let dirs =
        std::env::join_paths([f.keystore.clone(), scratch.path().join("drive")]).expect("join");
    std::fs::create_dir_all(scratch.path().join("drive")).expect("mkdir");
    let out = Command::new(std::env::current_exe().expect("exe"))
        .args(["--ignored", "--test-threads=1", "child_"])
        .env("SEGEL_KEYSTORE_DIRS", dirs)
        .env("SEGEL_PKCS11_CONFIG", &conf)
        .env("SEGEL_TEST_KEYSTORE", &f.keystore)
        .env("SEGEL_TEST_WORK", &f.work)
        .env("SEGEL_TEST_DRIVE", scratch.path().join("drive"))
        .output()
        .expect("spawn child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("{CHILD_TESTS} passed")),
        "{stdout}"
    );
}

fn env_path(name: &str) -> PathBuf {
    PathBuf::from(std::env::var_os(name).expect("run through the parent test"))
}

fn context() -> Pkcs11 {
    let ctx = Pkcs11::new(module_path()).expect("load module");
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .expect("initialize");
    ctx
}

fn slot(ctx: &Pkcs11, label: &str) -> Slot {
    ctx.get_slots_with_token()
        .expect("slots")
        .into_iter()
        .find(|s| ctx.get_token_info(*s).is_ok_and(|t| t.label() == label))
        .unwrap_or_else(|| panic!("no token {label}"))
}

fn login(ctx: &Pkcs11, label: &str) -> Session {
    let s = ctx.open_ro_session(slot(ctx, label)).expect("session");
    s.login(UserType::User, Some(&AuthPin::new(PIN.into())))
        .expect("login");
    s
}

fn rv(e: Error) -> RvError {
    match e {
        Error::Pkcs11(rv, _) => rv,
        other => panic!("not a PKCS#11 error: {other}"),
    }
}

fn one(s: &Session, template: &[Attribute]) -> cryptoki::object::ObjectHandle {
    let found = s.find_objects(template).expect("find");
    assert_eq!(found.len(), 1, "{template:?}");
    found[0]
}

#[test]
#[ignore = "run by the parent test with the environment set"]
fn child_token_info_has_file_label_hex_serial_and_login_flags() {
    let ctx = context();
    let info = ctx.get_token_info(slot(&ctx, "budi")).expect("info");
    assert_eq!(info.manufacturer_id(), "Segel");
    assert_eq!(info.serial_number().len(), 16);
    assert!(info.login_required() && info.user_pin_initialized() && info.token_initialized());
    let mechs = ctx
        .get_mechanism_list(slot(&ctx, "budi"))
        .expect("mechanisms");
    assert!(mechs.len() >= 14, "{mechs:?}");
}

#[test]
#[ignore = "run by the parent test with the environment set"]
fn child_private_objects_appear_at_login_and_certificates_stay_after_logout() {
    let ctx = context();
    let s = ctx.open_ro_session(slot(&ctx, "budi")).expect("session");
    let certs = [Attribute::Class(ObjectClass::CERTIFICATE)];
    let keys = [Attribute::Class(ObjectClass::PRIVATE_KEY)];
    // OpenSSL encrypts certificate bags: nothing is visible before the first login.
    assert!(s.find_objects(&keys).expect("find").is_empty());
    let so = s.login(UserType::So, Some(&AuthPin::new(PIN.into())));
    assert_eq!(so.map_err(rv), Err(RvError::UserTypeInvalid));
    s.login(UserType::User, Some(&AuthPin::new(PIN.into())))
        .expect("login");
    assert_eq!(s.find_objects(&keys).expect("find").len(), 1);
    assert_eq!(s.find_objects(&certs).expect("find").len(), 1);
    let again = s.login(UserType::User, Some(&AuthPin::new(PIN.into())));
    assert_eq!(again.map_err(rv), Err(RvError::UserAlreadyLoggedIn));
    s.logout().expect("logout");
    assert!(s.find_objects(&keys).expect("find").is_empty());
    assert_eq!(s.find_objects(&certs).expect("find").len(), 1);
    assert_eq!(s.logout().map_err(rv), Err(RvError::UserNotLoggedIn));
}

#[test]
#[ignore = "run by the parent test with the environment set"]
fn child_attributes_follow_size_rule_sensitivity_and_type_validity() {
    let ctx = context();
    let s = login(&ctx, "budi");
    let key = one(&s, &[Attribute::Class(ObjectClass::PRIVATE_KEY)]);
    let info = s
        .get_attribute_info(
            key,
            &[
                AttributeType::Modulus,
                AttributeType::PrivateExponent,
                AttributeType::EcPoint,
            ],
        )
        .expect("info");
    assert!(
        matches!(
            info.as_slice(),
            [
                AttributeInfo::Available(256),
                AttributeInfo::Sensitive,
                AttributeInfo::TypeInvalid
            ]
        ),
        "{info:?}"
    );
    let attrs = s
        .get_attributes(
            key,
            &[
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::AlwaysAuthenticate,
                AttributeType::Sign,
                AttributeType::Decrypt,
                AttributeType::KeyType,
                AttributeType::Id,
            ],
        )
        .expect("attrs");
    assert!(matches!(attrs[0], Attribute::Sensitive(true)));
    assert!(matches!(attrs[1], Attribute::Extractable(false)));
    assert!(matches!(attrs[2], Attribute::AlwaysAuthenticate(false)));
    assert!(matches!(attrs[3], Attribute::Sign(true)));
    assert!(matches!(attrs[4], Attribute::Decrypt(true)));
    assert!(matches!(attrs[5], Attribute::KeyType(KeyType::RSA)));
    let Attribute::Id(id) = &attrs[6] else {
        panic!("id")
    };
    // The certificate and public key carry the same CKA_ID; the cert DER is the file's.
    let cert = one(
        &s,
        &[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::Id(id.clone()),
        ],
    );
    one(
        &s,
        &[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::Id(id.clone()),
        ],
    );
    let value = s
        .get_attributes(cert, &[AttributeType::Value])
        .expect("value");
    let Attribute::Value(der) = &value[0] else {
        panic!("value")
    };
    let pem = std::fs::read_to_string(env_path("SEGEL_TEST_WORK").join("rsa.crt")).expect("read");
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert_eq!(hex::encode(der), hex::encode(base64_decode(&b64)));
}

/// Minimal base64 decoder for the PEM certificate (no extra dependency for one test).
fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            _ => 63,
        }
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| *c != b'=').collect();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c) << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

#[test]
#[ignore = "run by the parent test with the environment set"]
fn child_rsa_pkcs_signature_over_digest_info_verifies() {
    use sha2::Digest;
    let ctx = context();
    let s = login(&ctx, "lama");
    let key = one(&s, &[Attribute::Class(ObjectClass::PRIVATE_KEY)]);
    let hash = sha2::Sha256::digest(b"berita acara");
    // DigestInfo for SHA-256 (RFC 8017 §9.2 note 1) followed by the hash.
    let mut digest_info = hex::decode("3031300d060960864801650304020105000420").expect("hex");
    digest_info.extend_from_slice(&hash);
    let sig = s
        .sign(&Mechanism::RsaPkcs, key, &digest_info)
        .expect("sign");
    let pubkey = one(&s, &[Attribute::Class(ObjectClass::PUBLIC_KEY)]);
    let a = s
        .get_attributes(
            pubkey,
            &[AttributeType::Modulus, AttributeType::PublicExponent],
        )
        .expect("attrs");
    let (Attribute::Modulus(n), Attribute::PublicExponent(e)) = (&a[0], &a[1]) else {
        panic!("modulus")
    };
    let pk = rsa::RsaPublicKey::new(
        rsa::BigUint::from_bytes_be(n),
        rsa::BigUint::from_bytes_be(e),
    )
    .expect("public key");
    pk.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &hash, &sig)
        .expect("signature verifies");
}

#[test]
#[ignore = "run by the parent test with the environment set"]
fn child_ecdsa_is_raw_r_s_and_ecdh_derives_an_extractable_shared_secret() {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    use sha2::Digest;
    let ctx = context();
    let s = login(&ctx, "ec");
    let key = one(&s, &[Attribute::Class(ObjectClass::PRIVATE_KEY)]);
    let pubkey = one(&s, &[Attribute::Class(ObjectClass::PUBLIC_KEY)]);
    let a = s
        .get_attributes(pubkey, &[AttributeType::EcPoint])
        .expect("point");
    let Attribute::EcPoint(point_der) = &a[0] else {
        panic!("point")
    };
    // CKA_EC_POINT is a DER OCTET STRING around the 65-byte uncompressed point.
    assert_eq!(&point_der[..2], &[0x04, 0x41]);
    let token_pub = p256::PublicKey::from_sec1_bytes(&point_der[2..]).expect("point");

    let hash = sha2::Sha256::digest(b"penawaran");
    let sig = s.sign(&Mechanism::Ecdsa, key, &hash).expect("sign");
    assert_eq!(sig.len(), 64);
    let sig = p256::ecdsa::Signature::from_slice(&sig).expect("r||s");
    p256::ecdsa::VerifyingKey::from(&token_pub)
        .verify_prehash(&hash, &sig)
        .expect("verifies");

    let eph = p256::SecretKey::random(&mut rand_core::OsRng);
    let eph_point = {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        eph.public_key().to_encoded_point(false).as_bytes().to_vec()
    };
    let params = Ecdh1DeriveParams::new(EcKdf::null(), &eph_point);
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Extractable(true),
        Attribute::Sensitive(false),
    ];
    let secret = s
        .derive_key(&Mechanism::Ecdh1Derive(params), key, &template)
        .expect("derive");
    let v = s
        .get_attributes(secret, &[AttributeType::Value])
        .expect("value");
    let Attribute::Value(shared) = &v[0] else {
        panic!("value")
    };
    let expected = p256::ecdh::diffie_hellman(eph.to_nonzero_scalar(), token_pub.as_affine());
    assert_eq!(shared.as_slice(), expected.raw_secret_bytes().as_slice());
}

#[test]
#[ignore = "run by the parent test with the environment set"]
fn child_removed_key_file_ends_its_sessions_and_returns_with_the_same_slot() {
    let drive = env_path("SEGEL_TEST_DRIVE");
    let file = drive.join("cabut.p12");
    std::fs::copy(env_path("SEGEL_TEST_KEYSTORE").join("ec.pfx"), &file).expect("copy");
    let ctx = context();
    let id = slot(&ctx, "cabut");
    let s = login(&ctx, "cabut");
    let key = one(&s, &[Attribute::Class(ObjectClass::PRIVATE_KEY)]);
    std::fs::remove_file(&file).expect("remove");
    let r = s.sign(&Mechanism::Ecdsa, key, &[7u8; 32]);
    assert_eq!(r.map_err(rv), Err(RvError::DeviceRemoved));
    let present = ctx.get_slots_with_token().expect("slots");
    assert!(!present.contains(&id));
    std::fs::copy(env_path("SEGEL_TEST_KEYSTORE").join("ec.pfx"), &file).expect("copy back");
    assert_eq!(slot(&ctx, "cabut"), id);
    std::fs::remove_file(&file).expect("remove");
}

#[test]
#[ignore = "run by the parent test with the environment set"]
fn child_enrolment_on_a_blank_slot_keeps_sessions_and_handles_across_file_rewrites() {
    use cryptoki::object::CertificateType;
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    let drive = env_path("SEGEL_TEST_DRIVE");
    let ctx = context();
    let blank = ctx
        .get_slots_with_token()
        .expect("slots")
        .into_iter()
        .find(|s| {
            ctx.get_slot_info(*s).is_ok_and(|i| {
                i.slot_description()
                    .contains(&format!("new key file in {}", drive.display()))
            })
        })
        .expect("blank slot for the drive folder");
    let info = ctx.get_token_info(blank).expect("info");
    assert!(!info.token_initialized() && !info.user_pin_initialized());
    let so = AuthPin::new("petugas-SO".into());
    let user = AuthPin::new("sandi-awal-1".into());
    ctx.init_token(blank, &so, "enrol").expect("C_InitToken");
    let s = ctx.open_rw_session(blank).expect("session");
    assert_eq!(
        s.login(UserType::User, Some(&user)).map_err(rv),
        Err(RvError::UserPinNotInitialized)
    );
    assert_eq!(
        s.login(UserType::So, Some(&user)).map_err(rv),
        Err(RvError::PinIncorrect)
    );
    s.login(UserType::So, Some(&so)).expect("SO login");
    assert_eq!(
        s.init_pin(&AuthPin::new("pendek".into())).map_err(rv),
        Err(RvError::PinLenRange)
    );
    s.init_pin(&user).expect("C_InitPIN");
    assert!(drive.join("enrol.p12").exists());
    s.logout().expect("SO logout");
    s.login(UserType::User, Some(&user)).expect("user login");
    let (public, private) = s
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[
                Attribute::EcParams(vec![
                    0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
                ]),
                Attribute::Token(true),
            ],
            &[
                Attribute::Token(true),
                Attribute::Id(vec![9]),
                Attribute::Label(b"enrol-ec".to_vec()),
            ],
        )
        .expect("C_GenerateKeyPair");
    let point = match &s
        .get_attributes(public, &[AttributeType::EcPoint])
        .expect("point")[0]
    {
        Attribute::EcPoint(p) => p.clone(),
        other => panic!("{other:?}"),
    };
    let verifying = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point[2..]).expect("point");
    let hash = [0x5a; 32];
    let check = |key| {
        let sig = s.sign(&Mechanism::Ecdsa, key, &hash).expect("sign");
        let sig = p256::ecdsa::Signature::from_slice(&sig).expect("r||s");
        verifying.verify_prehash(&hash, &sig).expect("verifies");
    };
    check(private);
    // Not a certificate: refused before anything is written.
    let before = std::fs::read(drive.join("enrol.p12")).expect("read");
    let junk = [
        Attribute::Class(ObjectClass::CERTIFICATE),
        Attribute::CertificateType(CertificateType::X_509),
        Attribute::Token(true),
        Attribute::Value(vec![0x30, 0x03, 0x02, 0x01, 0x01]),
    ];
    assert_eq!(
        s.create_object(&junk).map_err(rv),
        Err(RvError::AttributeValueInvalid)
    );
    assert_eq!(
        std::fs::read(drive.join("enrol.p12")).expect("read"),
        before
    );
    // A passphrase change rewrites the file; the session and the key handle go on working.
    s.set_pin(&user, &AuthPin::new("sandi-baru-22".into()))
        .expect("C_SetPIN");
    assert_ne!(
        std::fs::read(drive.join("enrol.p12")).expect("read"),
        before
    );
    check(private);
    let ro = ctx.open_ro_session(blank).expect("ro session");
    assert_eq!(
        ro.set_pin(&user, &user).map_err(rv),
        Err(RvError::SessionReadOnly)
    );
    drop(ro);
    drop(s);
    let s = ctx.open_ro_session(blank).expect("session");
    assert_eq!(
        s.login(UserType::User, Some(&user)).map_err(rv),
        Err(RvError::PinIncorrect)
    );
    s.login(UserType::User, Some(&AuthPin::new("sandi-baru-22".into())))
        .expect("new passphrase");
    drop(s);
    std::fs::remove_file(drive.join("enrol.p12")).expect("remove");
}

#[test]
#[ignore = "run by the parent test with the environment set"]
fn child_null_pointers_and_short_buffers_are_rejected_by_the_c_entry_points() {
    use cryptoki_sys::*;
    use segel_pkcs11::ffi::{crypto, general, objects, session, slot_token};
    use std::ptr::null_mut;
    // SAFETY: the entry points are called with NULL where the test says so and otherwise with
    // pointers to live locals of the stated sizes.
    unsafe {
        assert_eq!(general::C_GetFunctionList(null_mut()), CKR_ARGUMENTS_BAD);
        let mut info: CK_INFO = std::mem::zeroed();
        assert_eq!(general::C_GetInfo(&mut info), CKR_CRYPTOKI_NOT_INITIALIZED);
        let mut half: CK_C_INITIALIZE_ARGS = std::mem::zeroed();
        half.CreateMutex = Some(dummy_create);
        assert_eq!(
            general::C_Initialize(&mut half as *mut _ as *mut _),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(general::C_Initialize(null_mut()), CKR_OK);
        assert_eq!(
            general::C_Initialize(null_mut()),
            CKR_CRYPTOKI_ALREADY_INITIALIZED
        );
        assert_eq!(general::C_GetInfo(null_mut()), CKR_ARGUMENTS_BAD);
        assert_eq!(
            slot_token::C_GetSlotList(CK_TRUE, null_mut(), null_mut()),
            CKR_ARGUMENTS_BAD
        );
        let mut count: CK_ULONG = 0;
        assert_eq!(
            slot_token::C_GetSlotList(CK_TRUE, null_mut(), &mut count),
            CKR_OK
        );
        assert!(count >= 5);
        let mut slots = vec![0 as CK_SLOT_ID; count as usize];
        let mut short = 1;
        assert_eq!(
            slot_token::C_GetSlotList(CK_TRUE, slots.as_mut_ptr(), &mut short),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(short, count);
        assert_eq!(
            slot_token::C_GetSlotList(CK_TRUE, slots.as_mut_ptr(), &mut count),
            CKR_OK
        );
        assert_eq!(
            slot_token::C_GetTokenInfo(slots[0], null_mut()),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            slot_token::C_GetSlotInfo(9999, null_mut()),
            CKR_SLOT_ID_INVALID
        );

        let mut h: CK_SESSION_HANDLE = 0;
        assert_eq!(
            session::C_OpenSession(slots[0], 0, null_mut(), None, &mut h),
            CKR_SESSION_PARALLEL_NOT_SUPPORTED
        );
        assert_eq!(
            session::C_OpenSession(slots[0], CKF_SERIAL_SESSION, null_mut(), None, null_mut()),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            session::C_OpenSession(slots[0], CKF_SERIAL_SESSION, null_mut(), None, &mut h),
            CKR_OK
        );
        assert_eq!(
            session::C_Login(h, CKU_USER, null_mut(), 5),
            CKR_ARGUMENTS_BAD
        );
        let mut sig_len: CK_ULONG = 0;
        let data = [0u8; 32];
        assert_eq!(
            crypto::C_Sign(h, data.as_ptr() as *mut _, 32, null_mut(), &mut sig_len),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!(
            crypto::C_Sign(h, data.as_ptr() as *mut _, 32, null_mut(), null_mut()),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(crypto::C_SignInit(h, null_mut(), 1), CKR_ARGUMENTS_BAD);
        assert_eq!(
            objects::C_GetAttributeValue(h, 1, null_mut(), 1),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            objects::C_FindObjectsInit(h, null_mut(), 2),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            objects::C_FindObjects(h, null_mut(), 1, &mut count),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            crypto::C_GenerateRandom(h, null_mut(), 8),
            CKR_ARGUMENTS_BAD
        );
        // The writing functions (enrolment, passphrase change).
        let pin = b"rahasia-123";
        assert_eq!(
            slot_token::C_InitToken(slots[0], pin.as_ptr() as *mut _, 11, null_mut()),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            slot_token::C_InitToken(slots[0], null_mut(), 11, null_mut()),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(slot_token::C_InitPIN(h, null_mut(), 3), CKR_ARGUMENTS_BAD);
        assert_eq!(
            slot_token::C_SetPIN(h, null_mut(), 3, pin.as_ptr() as *mut _, 11),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            slot_token::C_SetPIN(h, pin.as_ptr() as *mut _, 11, null_mut(), 4),
            CKR_ARGUMENTS_BAD
        );
        let mut obj: CK_OBJECT_HANDLE = 0;
        assert_eq!(
            objects::C_CreateObject(h, null_mut(), 0, null_mut()),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            objects::C_CreateObject(h, null_mut(), 2, &mut obj),
            CKR_ARGUMENTS_BAD
        );
        let (mut a, mut b): (CK_OBJECT_HANDLE, CK_OBJECT_HANDLE) = (0, 0);
        assert_eq!(
            crypto::C_GenerateKeyPair(h, null_mut(), null_mut(), 0, null_mut(), 0, &mut a, &mut b),
            CKR_ARGUMENTS_BAD
        );
        let mut mech = CK_MECHANISM {
            mechanism: CKM_EC_KEY_PAIR_GEN,
            pParameter: null_mut(),
            ulParameterLen: 0,
        };
        assert_eq!(
            crypto::C_GenerateKeyPair(
                h,
                &mut mech,
                null_mut(),
                0,
                null_mut(),
                0,
                null_mut(),
                &mut b
            ),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            crypto::C_GenerateKeyPair(h, &mut mech, null_mut(), 3, null_mut(), 0, &mut a, &mut b),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(session::C_CloseSession(h), CKR_OK);
        assert_eq!(session::C_CloseSession(h), CKR_SESSION_HANDLE_INVALID);
        assert_eq!(
            general::C_Finalize(&mut count as *mut _ as *mut _),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(general::C_Finalize(null_mut()), CKR_OK);
        assert_eq!(
            general::C_Finalize(null_mut()),
            CKR_CRYPTOKI_NOT_INITIALIZED
        );
    }
}

extern "C" fn dummy_create(_: *mut *mut std::ffi::c_void) -> cryptoki_sys::CK_RV {
    0
}

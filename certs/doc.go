// Package certs holds tongban's national-cryptography primitives: SM3
// hashing, SM2-with-SM3 signatures (GB/T 32918.2, default signer ID
// "1234567812345678"), X.509 certificates signed SM2-with-SM3, the trust
// store that maps a signer's key id to an identity (partner, administrator,
// auditor, gateway, log), and the development PKI that `tongban certs init`
// lays out.
//
// It is the only package of tongban that imports a national-crypto library
// (github.com/emmansun/gmsm); every other package hashes and signs through
// this one. It knows nothing of HTTP.
//
// The wire rules are in the project's contracts/signing.md:
//   - signatures are DER SEQUENCE{INTEGER r, INTEGER s} with nothing after;
//   - the signer ID is always the default one, so e = SM3(Z_A ‖ M);
//   - a certificate whose signature verifies only with an empty ID (OpenSSL 3's
//     default when -sigopt distid:… is forgotten) is invalid.
package certs

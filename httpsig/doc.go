// Package httpsig implements tongban's closed profile of [RFC 9421] (HTTP
// Message Signatures) and [RFC 9530] (Digest Fields) with SM2 and SM3, as
// contracts/signing.md defines it: the request signer used by partners and
// by tongban's deliveries, the verifying middleware in front of every
// signed route, signed acknowledgements and receipts bound to the request
// they answer, and the helpers auditors use to re-check a recorded
// signature.
//
// Fields are read as [RFC 8941] dictionaries. The label is always "tb", the
// algorithm "sm2-sm3", the parameters
// exactly created, nonce, keyid, alg in that order, and the covered
// components fixed by the method:
//
//	POST, PUT, PATCH  ("@method" "@target-uri" "content-digest" "content-type" ["idempotency-key"])
//	GET, DELETE       ("@method" "@target-uri")
//	responses         ("@status" "content-digest" "content-type" "@method";req "@target-uri";req "content-digest";req)
//
// [RFC 9421]: https://www.rfc-editor.org/rfc/rfc9421
// [RFC 9530]: https://www.rfc-editor.org/rfc/rfc9530
// [RFC 8941]: https://www.rfc-editor.org/rfc/rfc8941
package httpsig

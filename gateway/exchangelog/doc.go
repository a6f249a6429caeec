// Package exchangelog is tongban's signed exchange log: an append-only Merkle
// tree over SM3 in the shape of RFC 6962, signed checkpoints in the C2SP
// formats with SM2 signatures, inclusion and consistency proofs, export
// archives and evidence bundles, and the offline verification an auditor
// runs on them (contracts/exchange-log.md).
//
// Entries are appended by the gateway's store inside the business
// transaction (index = current size, leaf hash = [LeafHash]); a [Log] reads
// the leaves back, keeps the upper levels of the tree in memory for proofs,
// and signs a checkpoint whenever the tree has grown.
//
// Specifications:
//   - [RFC 6962] §2.1 (tree hash), [RFC 9162] §2.1.3–2.1.4 (proofs)
//   - [tlog-checkpoint], [signed-note]
//
// [RFC 6962]: https://www.rfc-editor.org/rfc/rfc6962
// [RFC 9162]: https://www.rfc-editor.org/rfc/rfc9162
// [tlog-checkpoint]: https://c2sp.org/tlog-checkpoint
// [signed-note]: https://c2sp.org/signed-note
package exchangelog

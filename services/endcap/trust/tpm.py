"""The TPM 2.0 adapter: the only module that imports ``tpm2_pytss``.

Responsibility: open the TPM by TCTI string (``device:/dev/tpmrm0`` on the device, ``swtpm:path=…``
in tests and ``endcap run``) and offer the few operations trust needs, each translating TSS errors
into ``IntegrityError`` with a code (``tpm_unavailable``, ``tpm_lockout``, ``tpm_error``,
``bad_signature``, ``anchor``, ``counter``) via ``raise … from e``.

Invariants:
- Trust anchor: an owner NV index written once at enrolment and then write-locked (``WRITEDEFINE``:
  no write until it is undefined, which needs owner auth). It holds ``MAGIC | sha256(root SPKI DER) |
  counter base``; every read checks its attributes (written, write-locked, owner-write only).
- Anti-rollback: an NV *counter* (``TPM_NT_COUNTER``, auth-write with empty auth so the runtime needs
  no owner secret: anyone may only raise the floor). Epoch = counter − base (base from the locked
  anchor, never from disk). Every read checks the counter's type and attributes.
- Signatures are checked inside the TPM: the signer's public key is loaded with LoadExternal into the
  owner hierarchy and VerifySignature checks the ECDSA P-256 signature over the digest.
- Measurement extends a configured PCR with SHA-256; quotes are signed by the persistent ECC AK.
- Every transient handle is flushed in ``finally``. Objects are ECC, NODA, authorised by policy or by
  an empty user auth (never a stored password).
"""
from __future__ import annotations

import hashlib
import logging
import struct
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from ..core.errors import IntegrityError

log = logging.getLogger(__name__)

MAGIC = b"ECA1"
ANCHOR_SIZE = len(MAGIC) + 32 + 8
DEFAULT_ANCHOR_INDEX = 0x01000E10
DEFAULT_COUNTER_INDEX = 0x01000E11
DEFAULT_AK_HANDLE = 0x81000E10


@dataclass(frozen=True)
class Anchor:
    root_key_sha256: bytes  # SHA-256 of the model-signing root's SubjectPublicKeyInfo (DER)
    counter_base: int  # the counter's value when enrolment recorded it: epoch 0


@dataclass(frozen=True)
class Quote:
    attest: bytes  # TPMS_ATTEST as marshalled by the TPM: the signed bytes
    signature_r: bytes
    signature_s: bytes
    pcr: int
    pcr_value: bytes


def encode_anchor(a: Anchor) -> bytes:
    return MAGIC + a.root_key_sha256 + struct.pack(">Q", a.counter_base)


def decode_anchor(data: bytes) -> Anchor:
    if len(data) != ANCHOR_SIZE or not data.startswith(MAGIC):
        raise IntegrityError("trust anchor NV index holds no Endcap anchor", code="anchor")
    return Anchor(data[4:36], struct.unpack(">Q", data[36:])[0])


class Tpm:
    """One ESAPI context. Use as a context manager; every method may raise ``IntegrityError``."""

    def __init__(self, tcti: str, *, anchor_index: int = DEFAULT_ANCHOR_INDEX,
                 counter_index: int = DEFAULT_COUNTER_INDEX, ak_handle: int = DEFAULT_AK_HANDLE) -> None:
        self.tcti = tcti
        self.anchor_index = anchor_index
        self.counter_index = counter_index
        self.ak_handle = ak_handle
        self._esys = None

    # --- lifecycle -------------------------------------------------------------------------------

    def open(self) -> "Tpm":
        from tpm2_pytss import ESAPI
        from tpm2_pytss.TSS2_Exception import TSS2_Exception

        try:
            self._esys = ESAPI(self.tcti)
        except TSS2_Exception as e:
            raise IntegrityError(f"TPM at {self.tcti!r} is not reachable: {e}", code="tpm_unavailable") from e
        return self

    def close(self) -> None:
        if self._esys is not None:
            self._esys.close()
            self._esys = None

    def __enter__(self) -> "Tpm":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def esys(self):
        if self._esys is None:
            raise IntegrityError("TPM is not open", code="tpm_unavailable")
        return self._esys

    @contextmanager
    def _op(self, what: str) -> Iterator[None]:
        """Translate TSS errors of one operation into IntegrityError with a reason code."""
        from tpm2_pytss.constants import TPM2_RC
        from tpm2_pytss.TSS2_Exception import TSS2_Exception

        try:
            yield
        except TSS2_Exception as e:
            if e.error == TPM2_RC.LOCKOUT:
                code = "tpm_lockout"
            elif e.error in (TPM2_RC.SIGNATURE, TPM2_RC.VALUE) and what == "verify signature":
                code = "bad_signature"
            elif (e.rc & 0xFFFF0000) != 0:  # a TCTI/ESYS layer error: the TPM itself is not answering
                code = "tpm_unavailable"
            else:
                code = "tpm_error"
            raise IntegrityError(f"TPM {what} failed: {e}", code=code) from e

    def in_lockout(self) -> bool:
        """Whether the TPM is in dictionary-attack lockout. Trust's own objects are NODA and need no
        owner auth, so they keep working; a lockout still means someone is guessing TPM secrets."""
        from tpm2_pytss.constants import TPM2_CAP, TPM2_PT, TPMA_PERMANENT

        with self._op("read permanent flags"):
            _, data = self.esys.get_capability(TPM2_CAP.TPM_PROPERTIES, TPM2_PT.PERMANENT, 1)
        props = data.data.tpmProperties
        return bool(props.count and props.tpmProperty[0].value & TPMA_PERMANENT.INLOCKOUT)

    # --- NV: anchor and counter -----------------------------------------------------------------

    def _nv_public(self, index: int):
        """(attributes, size) of an NV index, or None when it is not defined."""
        from tpm2_pytss.constants import TPM2_RC
        from tpm2_pytss.TSS2_Exception import TSS2_Exception

        try:
            tr = self.esys.tr_from_tpmpublic(index)
        except TSS2_Exception as e:
            if e.error == TPM2_RC.HANDLE:
                return None
            raise IntegrityError(f"TPM NV index {index:#x}: {e}", code="tpm_error") from e
        try:
            with self._op("NV read public"):
                pub, _name = self.esys.nv_read_public(tr)
        finally:
            self.esys.tr_close(tr)
        return pub.nvPublic.attributes, pub.nvPublic.dataSize

    def _nv_read(self, index: int, size: int) -> bytes:
        tr = self.esys.tr_from_tpmpublic(index)
        try:
            with self._op(f"NV read {index:#x}"):
                return bytes(self.esys.nv_read(tr, size, 0, auth_handle=tr))
        finally:
            self.esys.tr_close(tr)

    def read_anchor(self) -> Anchor:
        """The locked anchor, after checking the index's attributes.

        Raises:
            IntegrityError(code="anchor"): not enrolled, or the index is not a locked owner-written anchor.
        """
        from tpm2_pytss.constants import TPMA_NV

        found = self._nv_public(self.anchor_index)
        if found is None:
            raise IntegrityError(f"no trust anchor at NV {self.anchor_index:#x}: device not enrolled", code="anchor")
        attrs, size = found
        must = TPMA_NV.WRITTEN | TPMA_NV.WRITELOCKED | TPMA_NV.WRITEDEFINE | TPMA_NV.OWNERWRITE
        must_not = TPMA_NV.AUTHWRITE | TPMA_NV.POLICYWRITE | TPMA_NV.PPWRITE
        if (attrs & must) != must or attrs & must_not or size != ANCHOR_SIZE:
            raise IntegrityError(f"trust anchor NV {self.anchor_index:#x} has wrong attributes {attrs:#x}", code="anchor")
        return decode_anchor(self._nv_read(self.anchor_index, ANCHOR_SIZE))

    def read_counter(self) -> int:
        """The raw NV counter value, after checking it is a written counter index.

        Raises:
            IntegrityError(code="counter"): missing, not a counter, or not written.
        """
        from tpm2_pytss.constants import TPM2_NT, TPMA_NV

        found = self._nv_public(self.counter_index)
        if found is None:
            raise IntegrityError(f"no rollback counter at NV {self.counter_index:#x}", code="counter")
        attrs, size = found
        nt = (int(attrs) & TPMA_NV.TPM2_NT_MASK) >> TPMA_NV.TPM2_NT_SHIFT
        if nt != TPM2_NT.COUNTER or not attrs & TPMA_NV.WRITTEN or size != 8:
            raise IntegrityError(f"NV {self.counter_index:#x} is not a written counter (attributes {attrs:#x})", code="counter")
        return struct.unpack(">Q", self._nv_read(self.counter_index, 8))[0]

    def epoch(self) -> int:
        """The anti-rollback floor: counter − base recorded in the anchor."""
        value, base = self.read_counter(), self.read_anchor().counter_base
        if value < base:
            raise IntegrityError(f"rollback counter {value} is below its enrolled base {base}", code="counter")
        return value - base

    def raise_epoch(self, epoch: int) -> int:
        """Increment the counter (by one per call, as counters do) until the floor is ``epoch``."""
        current = self.epoch()
        if epoch > current + 1024:
            raise IntegrityError(f"security epoch {epoch} jumps more than 1024 above {current}", code="epoch")
        tr = self.esys.tr_from_tpmpublic(self.counter_index)
        try:
            for _ in range(epoch - current):
                with self._op("NV increment"):
                    self.esys.nv_increment(tr, auth_handle=tr)
        finally:
            self.esys.tr_close(tr)
        return self.epoch()

    def define_counter(self) -> int:
        """Define the counter if absent and make it written; returns its current raw value."""
        from tpm2_pytss.constants import ESYS_TR, TPM2_ALG, TPM2_NT, TPMA_NV
        from tpm2_pytss.types import TPM2B_NV_PUBLIC, TPMS_NV_PUBLIC

        if self._nv_public(self.counter_index) is None:
            attrs = (TPMA_NV.AUTHWRITE | TPMA_NV.AUTHREAD | TPMA_NV.OWNERREAD | TPMA_NV.NO_DA
                     | (TPM2_NT.COUNTER << TPMA_NV.TPM2_NT_SHIFT))
            pub = TPM2B_NV_PUBLIC(nvPublic=TPMS_NV_PUBLIC(nvIndex=self.counter_index, nameAlg=TPM2_ALG.SHA256,
                                                          attributes=attrs, dataSize=8))
            with self._op("NV define counter"):
                tr = self.esys.nv_define_space(b"", pub, ESYS_TR.OWNER)
            try:
                with self._op("NV increment"):
                    self.esys.nv_increment(tr, auth_handle=tr)  # a counter is readable only once written
            finally:
                self.esys.tr_close(tr)
        return self.read_counter()

    def define_anchor(self, anchor: Anchor) -> None:
        """Define, write and write-lock the anchor index (owner auth: empty or already set by the session)."""
        from tpm2_pytss.constants import ESYS_TR, TPM2_ALG, TPMA_NV
        from tpm2_pytss.types import TPM2B_NV_PUBLIC, TPMS_NV_PUBLIC

        attrs = TPMA_NV.OWNERWRITE | TPMA_NV.OWNERREAD | TPMA_NV.AUTHREAD | TPMA_NV.WRITEDEFINE | TPMA_NV.NO_DA
        pub = TPM2B_NV_PUBLIC(nvPublic=TPMS_NV_PUBLIC(nvIndex=self.anchor_index, nameAlg=TPM2_ALG.SHA256,
                                                      attributes=attrs, dataSize=ANCHOR_SIZE))
        with self._op("NV define anchor"):
            tr = self.esys.nv_define_space(b"", pub, ESYS_TR.OWNER)
        try:
            with self._op("NV write anchor"):
                self.esys.nv_write(tr, encode_anchor(anchor), 0, auth_handle=ESYS_TR.OWNER)
                self.esys.nv_write_lock(tr, auth_handle=ESYS_TR.OWNER)
        finally:
            self.esys.tr_close(tr)

    def anchor_defined(self) -> bool:
        return self._nv_public(self.anchor_index) is not None

    # --- signatures -----------------------------------------------------------------------------

    def verify_ecdsa_p256(self, public_xy: tuple[bytes, bytes], digest: bytes, r: bytes, s: bytes) -> None:
        """Check an ECDSA P-256/SHA-256 signature over ``digest`` inside the TPM.

        Raises:
            IntegrityError(code="bad_signature"): the TPM rejects the signature.
        """
        from tpm2_pytss.constants import ESYS_TR, TPM2_ALG, TPMA_OBJECT
        from tpm2_pytss.types import TPM2B_PUBLIC, TPMS_SIGNATURE_ECC, TPMT_SIGNATURE

        pub = TPM2B_PUBLIC.parse("ecc256:ecdsa-sha256:null", objectAttributes=TPMA_OBJECT.SIGN_ENCRYPT | TPMA_OBJECT.USERWITHAUTH | TPMA_OBJECT.NODA)
        pub.publicArea.unique.ecc.x = public_xy[0]
        pub.publicArea.unique.ecc.y = public_xy[1]
        sig = TPMT_SIGNATURE(sigAlg=TPM2_ALG.ECDSA)
        sig.signature.ecdsa = TPMS_SIGNATURE_ECC(hash=TPM2_ALG.SHA256, signatureR=r, signatureS=s)
        with self._op("load signer key"):
            handle = self.esys.load_external(pub, None, ESYS_TR.OWNER)
        try:
            with self._op("verify signature"):
                self.esys.verify_signature(handle, digest, sig)
        finally:
            self.esys.flush_context(handle)

    # --- measurement and attestation --------------------------------------------------------------

    def extend(self, pcr: int, digest: bytes) -> None:
        from tpm2_pytss.constants import ESYS_TR, TPM2_ALG
        from tpm2_pytss.types import TPML_DIGEST_VALUES, TPMT_HA

        ha = TPMT_HA(hashAlg=TPM2_ALG.SHA256)
        ha.digest.sha256 = digest
        values = TPML_DIGEST_VALUES([ha])
        with self._op(f"extend PCR {pcr}"):
            self.esys.pcr_extend(ESYS_TR.parse(f"PCR{pcr}"), values)

    def read_pcr(self, pcr: int) -> bytes:
        with self._op(f"read PCR {pcr}"):
            _, _, values = self.esys.pcr_read(f"sha256:{pcr}")
        return bytes(values.digests[0])

    def ak_public(self) -> tuple[bytes, bytes] | None:
        """The persistent AK's (x, y), or None when there is none."""
        from tpm2_pytss.constants import TPM2_RC
        from tpm2_pytss.TSS2_Exception import TSS2_Exception

        try:
            tr = self.esys.tr_from_tpmpublic(self.ak_handle)
        except TSS2_Exception as e:
            if e.error == TPM2_RC.HANDLE:
                return None
            raise IntegrityError(f"TPM AK {self.ak_handle:#x}: {e}", code="tpm_error") from e
        try:
            with self._op("read AK"):
                pub, _, _ = self.esys.read_public(tr)
        finally:
            self.esys.tr_close(tr)
        return bytes(pub.publicArea.unique.ecc.x), bytes(pub.publicArea.unique.ecc.y)

    def create_ak(self) -> tuple[bytes, bytes]:
        """Create the restricted ECC P-256 signing AK (NODA, fixedTPM) and make it persistent."""
        from tpm2_pytss.constants import ESYS_TR, TPMA_OBJECT
        from tpm2_pytss.types import TPM2B_PUBLIC, TPM2B_SENSITIVE_CREATE

        attrs = (TPMA_OBJECT.RESTRICTED | TPMA_OBJECT.SIGN_ENCRYPT | TPMA_OBJECT.FIXEDTPM | TPMA_OBJECT.FIXEDPARENT
                 | TPMA_OBJECT.SENSITIVEDATAORIGIN | TPMA_OBJECT.USERWITHAUTH | TPMA_OBJECT.NODA)
        templ = TPM2B_PUBLIC.parse("ecc256:ecdsa-sha256:null", objectAttributes=attrs)
        with self._op("create AK"):
            handle, pub, _, _, _ = self.esys.create_primary(TPM2B_SENSITIVE_CREATE(), templ, ESYS_TR.OWNER)
        try:
            with self._op("persist AK"):
                persistent = self.esys.evict_control(ESYS_TR.OWNER, handle, self.ak_handle)
                self.esys.tr_close(persistent)
        finally:
            self.esys.flush_context(handle)
        return bytes(pub.publicArea.unique.ecc.x), bytes(pub.publicArea.unique.ecc.y)

    def quote(self, pcr: int, nonce: bytes) -> Quote:
        """A quote over SHA-256 PCR ``pcr`` with ``nonce`` as qualifying data, signed by the AK."""
        from tpm2_pytss.constants import TPM2_ALG
        from tpm2_pytss.types import TPMT_SIG_SCHEME

        if len(nonce) > 32:
            raise IntegrityError("quote nonce longer than 32 bytes", code="nonce")
        scheme = TPMT_SIG_SCHEME(scheme=TPM2_ALG.ECDSA)
        scheme.details.any.hashAlg = TPM2_ALG.SHA256
        tr = self.esys.tr_from_tpmpublic(self.ak_handle)
        try:
            with self._op("quote"):
                attest, sig = self.esys.quote(tr, f"sha256:{pcr}", nonce, scheme)
        finally:
            self.esys.tr_close(tr)
        return Quote(bytes(attest), bytes(sig.signature.ecdsa.signatureR), bytes(sig.signature.ecdsa.signatureS),
                     pcr, self.read_pcr(pcr))


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()

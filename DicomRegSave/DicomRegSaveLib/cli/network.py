"""Send DICOM files to a storage SCP (a PACS, a planning system) with pynetdicom.

One association per call: C-ECHO first (is the peer there and does it talk DICOM?), then one
C-STORE per file. The association proposes a presentation context for exactly the SOP classes of
the files being sent, because the default context lists of most tools lack the registration
classes (66.1 / 66.3). Every file's outcome is reported with the peer's status explained.
"""

from __future__ import annotations

import errno
import logging
import re
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from DicomRegSaveLib import IMPLEMENTATION_VERSION_NAME
from DicomRegSaveLib.errors import SendError
from DicomRegSaveLib.file_walker import walk
from DicomRegSaveLib.progress import Progress

if TYPE_CHECKING:
    from pynetdicom import AE

#: The calling AE title when none is given.
DEFAULT_CALLING_AE_TITLE = "DICOMREGSAVE"
#: Seconds to wait for the connection, each association step and each DIMSE response.
DEFAULT_TIMEOUT_S = 30.0
#: Uncompressed transfer syntaxes proposed in a second context besides a file's own, so that a peer
#: which does not accept the file's syntax can still receive it (pynetdicom converts between these).
UNCOMPRESSED_TRANSFER_SYNTAXES = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
#: Most presentation contexts one association may carry (PS3.8 9.3.2.2: odd context IDs 1-255).
MAX_PRESENTATION_CONTEXTS = 128
#: Abstract syntax of the Verification SOP Class (C-ECHO).
VERIFICATION_SOP_CLASS_UID = "1.2.840.10008.1.1"

#: The elements of each file a send needs decoded: what it is and how it is encoded.
_SEND_TAGS = frozenset(
    tag_for_keyword(keyword)
    for keyword in ("MediaStorageSOPClassUID", "TransferSyntaxUID", "SOPClassUID", "SOPInstanceUID", "Modality")
)

_AE_TITLE = re.compile(r"^[^\\\x00-\x1f]{1,16}$")


def valid_ae_title(text: str) -> bool:
    """True if `text` is an AE title: 1-16 characters, no backslash or control characters."""
    return bool(_AE_TITLE.match(text))


@dataclass(frozen=True)
class Peer:
    """A DICOM application entity to send to: ``AET@HOST:PORT``."""

    ae_title: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Peer:
        """Parse ``AET@HOST:PORT`` (an IPv6 host in brackets: ``AET@[::1]:104``).

        Raises
        ------
        SendError
            If the text is not of that form, the AE title is not 1-16 characters without
            backslash/control characters, or the port is not 1-65535.
        """
        match = re.fullmatch(
            r"(?P<aet>[^@]+)@(?:\[(?P<ipv6>[^\]]+)\]|(?P<host>[^:@\[\]]+)):(?P<port>\d+)", text.strip()
        )
        if match is None:
            raise SendError(f"{text!r} is not a DICOM peer; write it as AET@HOST:PORT, e.g. ORTHANC@127.0.0.1:4242.")
        ae_title = match["aet"].strip()
        if not valid_ae_title(ae_title):
            raise SendError(
                f"The AE title {ae_title!r} in {text!r} is not valid: 1-16 characters, no backslash or control characters."
            )
        port = int(match["port"])
        if not 1 <= port <= 65535:
            raise SendError(f"The port {port} in {text!r} is not valid: use 1-65535.")
        return cls(ae_title, match["ipv6"] or match["host"], port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.ae_title}@{host}:{self.port}"


@dataclass
class FileOutcome:
    """What happened to one file: ``status`` is the peer's C-STORE status (``None``: not sent).

    ``skipped`` files are not meant to be stored: a DICOMDIR, or a non-DICOM file found in a folder.
    """

    path: Path
    sop_class_uid: str | None
    sop_instance_uid: str | None
    status: int | None
    message: str
    skipped: bool = False

    @property
    def ok(self) -> bool:
        """True when the peer stored the file (status Success or Warning) or it was skipped."""
        return self.skipped or (self.status is not None and _category(self.status) in ("Success", "Warning"))


@dataclass
class SendReport:
    """Outcome of one :func:`send_files` call."""

    peer: Peer
    calling_ae_title: str
    echo: str = "not attempted"
    files: list[FileOutcome] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the association worked and every file was stored."""
        return self.error is None and all(outcome.ok for outcome in self.files)


@dataclass(frozen=True)
class _Candidate:
    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str


def send_files(
    paths: Sequence[str | Path],
    peer: Peer,
    *,
    calling_ae_title: str = DEFAULT_CALLING_AE_TITLE,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    on_file: Callable[[FileOutcome], None] | None = None,
    progress: Progress | None = None,
) -> SendReport:
    """C-ECHO `peer`, then C-STORE every DICOM instance of `paths`, images or not (REG, RTSTRUCT, ...).

    The instances are found by the project's file walker (:func:`file_walker.walk`: folders
    searched recursively, each file once, files without preamble read too). DICOMDIRs and files in
    folders that are not DICOM are reported as skipped; named files that are not DICOM, and DICOM
    files that cannot be read, as not sent. Nothing is retried.

    Parameters
    ----------
    calling_ae_title:
        Our AE title, as the peer knows us.
    timeout_s:
        Seconds for the TCP connection, association negotiation and each response.
    on_file:
        Called with each file's outcome as soon as it is known (for one line per file).
    progress:
        Follows the search of the folders and the reading of the headers (:func:`file_walker.walk`).

    Raises
    ------
    SendError
        If the calling AE title is not valid, or the files need more presentation contexts than
        one association can carry.
    DicomInputError
        If a path does not exist.
    """
    from pynetdicom import AE

    if not valid_ae_title(calling_ae_title):
        raise SendError(
            f"The calling AE title {calling_ae_title!r} is not valid: 1-16 characters, no backslash or control characters."
        )
    report = SendReport(peer, calling_ae_title)

    def record(outcome: FileOutcome) -> None:
        report.files.append(outcome)
        if on_file is not None:
            on_file(outcome)

    walked = walk(paths, "path to send", decode_tags=_SEND_TAGS, progress=progress)
    for passed in walked.skipped:
        record(FileOutcome(passed.path, None, None, None, f"skipped: {passed.reason}", skipped=True))
    for passed in walked.problems:
        record(FileOutcome(passed.path, None, None, None, f"not sent: {passed.reason}"))
    candidates = [
        _Candidate(found.path, found.sop_class_uid, found.sop_instance_uid, found.transfer_syntax_uid)
        for found in walked.instances
    ]
    if not candidates:
        report.error = "There is no DICOM instance to send among the files given; nothing was sent."
        return report

    contexts = _presentation_contexts(candidates)
    ae = _socket_keeping_ae(AE)(ae_title=calling_ae_title)
    ae.implementation_version_name = IMPLEMENTATION_VERSION_NAME
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    ae.connection_timeout = timeout_s
    ae.add_requested_context(VERIFICATION_SOP_CLASS_UID)
    for sop_class_uid, transfer_syntaxes in contexts:
        ae.add_requested_context(sop_class_uid, transfer_syntaxes)

    with _pynetdicom_records() as records:
        try:
            _exchange(ae, peer, candidates, report, record, records, timeout_s)
        finally:
            for created in ae.created_sockets:
                created.close()
    return report


def _exchange(
    ae: AE,
    peer: Peer,
    candidates: Sequence[_Candidate],
    report: SendReport,
    record: Callable[[FileOutcome], None],
    records: list[logging.LogRecord],
    timeout_s: float,
) -> None:
    """Associate with `peer`, C-ECHO, then C-STORE each candidate; every outcome goes to `record`."""
    from pynetdicom.dul import DULServiceProvider

    def none_sent(error: str, why: str) -> None:
        report.error = error
        for candidate in candidates:
            record(_not_sent(candidate, f"not sent: {why}"))

    association = None
    try:
        try:
            association = ae.associate(peer.host, peer.port, ae_title=peer.ae_title)
        except socket.gaierror as error:
            none_sent(
                f"Cannot connect to {peer}: the host {peer.host} was not found ({error.strerror}).", "no association"
            )
            return
        if not association.is_established:
            none_sent(_association_failure(association, peer, records, timeout_s), "no association")
            return
        report.echo = _echo(association)
        if report.echo != "Success":
            none_sent(f"{peer} answered C-ECHO with {report.echo}; nothing was sent.", "C-ECHO failed")
            return
        accepted = {str(cx.abstract_syntax) for cx in association.accepted_contexts}
        for candidate in candidates:
            if candidate.sop_class_uid not in accepted:
                record(
                    _not_sent(
                        candidate,
                        f"not sent: {peer} does not accept {_sop_class_name(candidate.sop_class_uid)} "
                        f"({candidate.sop_class_uid}) in any transfer syntax we offered",
                    )
                )
                continue
            record(_store(association, candidate, peer))
            if not association.is_established:
                report.error = f"{peer} ended the association while files were being sent."
                for rest in candidates[candidates.index(candidate) + 1 :]:
                    record(_not_sent(rest, "not sent: the association was lost"))
                break
    except KeyboardInterrupt:
        # Ctrl-C: abort at once (a release would wait for the peer), also an association still being
        # negotiated, whose network thread would otherwise keep the process alive until the time-out
        for thread in threading.enumerate():
            if isinstance(thread, DULServiceProvider) and thread.assoc.ae is ae:
                thread.assoc.abort()
        raise
    finally:
        if association is not None and association.is_established:
            association.release()


def _socket_keeping_ae(ae_class: type) -> type:
    """pynetdicom's AE, keeping the sockets it creates in ``created_sockets``: when a connection fails,
    pynetdicom drops the socket without closing it (its shutdown of the unconnected socket raises
    first), so the send closes them itself."""

    class SocketKeepingAE(ae_class):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            self.created_sockets: list[socket.socket] = []

        def _create_socket(self, *args: object, **kwargs: object):
            created = super()._create_socket(*args, **kwargs)
            self.created_sockets.append(created.socket)
            return created

    return SocketKeepingAE


class _Records(logging.Handler):
    """Keeps log records instead of showing them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def _pynetdicom_records() -> Iterator[list[logging.LogRecord]]:
    """pynetdicom's log records while the block runs, kept from the user's screen: the send says what
    happened in its own words (and reads the cause of a failed connection from them)."""
    logger = logging.getLogger("pynetdicom")
    handler, propagate = _Records(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _presentation_contexts(candidates: Sequence[_Candidate]) -> list[tuple[str, list[str]]]:
    """(SOP class, transfer syntaxes) to propose: per SOP class one context with the files' own
    transfer syntaxes, so that a peer accepting them receives the files as they are, and for
    uncompressed files a fallback context with the uncompressed syntaxes pynetdicom converts between.
    """
    own: dict[str, list[str]] = {}
    for candidate in candidates:
        syntaxes = own.setdefault(candidate.sop_class_uid, [])
        if candidate.transfer_syntax_uid not in syntaxes:
            syntaxes.append(candidate.transfer_syntax_uid)
    contexts = []
    for sop_class_uid, syntaxes in own.items():
        contexts.append((sop_class_uid, syntaxes))
        if all(not UID(s).is_compressed for s in syntaxes):
            contexts.append((sop_class_uid, list(UNCOMPRESSED_TRANSFER_SYNTAXES)))
    if len(contexts) + 1 > MAX_PRESENTATION_CONTEXTS:
        raise SendError(
            f"The files need {len(contexts)} presentation contexts for {len(own)} SOP classes; one association "
            f"carries at most {MAX_PRESENTATION_CONTEXTS - 1} besides Verification. Send them in smaller groups."
        )
    return contexts


#: How pynetdicom logs the OSError of a failed TCP connection (pynetdicom.transport.AssociationSocket.connect).
_CONNECTION_ERROR = re.compile(r"^TCP Initialisation Error: (?:\[Errno (?P<errno>-?\d+)\] )?(?P<reason>.*)$")


def _association_failure(association, peer: Peer, records: Sequence[logging.LogRecord], timeout_s: float) -> str:
    response = association.acceptor.primitive
    if association.is_rejected:
        return (
            f"{peer} rejected the association ({response.result_str}, source: {response.source_str}, "
            f"reason: {response.reason_str}). Check that the peer knows the calling AE title and "
            "that its called AE title is right."
        )
    if response is not None:
        return (
            f"{peer} accepted the association but none of the proposed presentation contexts "
            "(SOP class and transfer syntax). Check the peer's configuration for these SOP classes."
        )
    address = f"[{peer.host}]:{peer.port}" if ":" in peer.host else f"{peer.host}:{peer.port}"
    failure = next((match for r in records if (match := _CONNECTION_ERROR.match(r.getMessage())) is not None), None)
    if failure is not None and failure["errno"] is not None and int(failure["errno"]) == errno.ECONNREFUSED:
        return (
            f"Cannot connect to {peer}: connection refused by {address} (nothing listens on that port). "
            "Check the port, and that the peer is running."
        )
    if failure is not None and failure["errno"] is not None:
        return (
            f"Cannot connect to {peer}: {failure['reason']} ({address}). Check the address and port, and that "
            "the peer is reachable from here."
        )
    what = "the connection was not accepted" if failure is not None else "no DICOM peer answered"
    return (
        f"Cannot connect to {peer}: {what} within the timeout ({timeout_s:g} s) at {address}. Check the "
        "address and port, and that the peer is running and reachable from here."
    )


def _echo(association) -> str:
    if VERIFICATION_SOP_CLASS_UID not in {str(cx.abstract_syntax) for cx in association.accepted_contexts}:
        return "a rejection of the Verification presentation context"
    status = association.send_c_echo()
    if "Status" not in status:
        return "no response within the timeout"
    code = int(status.Status)
    return "Success" if code == 0 else f"status 0x{code:04X} ({explain_status(code)})"


def _store(association, candidate: _Candidate, peer: Peer) -> FileOutcome:
    try:
        dataset = pydicom.dcmread(candidate.path, force=True)
    except Exception as exc:  # noqa: BLE001 - a damaged file is reported, the others are still sent
        return _not_sent(candidate, f"not sent: cannot read the file ({type(exc).__name__}: {exc})")
    if "TransferSyntaxUID" not in dataset.file_meta:
        # a data set written without file meta information is sent in the encoding it was read in
        dataset.file_meta.TransferSyntaxUID = candidate.transfer_syntax_uid
    try:
        status = association.send_c_store(dataset)
    except (ValueError, AttributeError, RuntimeError) as exc:
        return _not_sent(candidate, f"not sent: {exc}")
    if "Status" not in status:
        return _not_sent(candidate, f"no response from {peer} (timeout, or the association was aborted)")
    code = int(status.Status)
    comment = f"; peer says: {status.ErrorComment}" if "ErrorComment" in status and status.ErrorComment else ""
    word = {"Success": "stored", "Warning": "stored with a warning"}.get(_category(code), "refused")
    return FileOutcome(
        candidate.path,
        candidate.sop_class_uid,
        candidate.sop_instance_uid,
        code,
        f"{word} (status 0x{code:04X}: {explain_status(code)}{comment})",
    )


def _not_sent(candidate: _Candidate, message: str) -> FileOutcome:
    return FileOutcome(candidate.path, candidate.sop_class_uid, candidate.sop_instance_uid, None, message)


def _category(code: int) -> str:
    from pynetdicom.status import code_to_category

    return code_to_category(code)


def explain_status(code: int) -> str:
    """A C-STORE/C-ECHO status code in words (PS3.4 Annex B, PS3.7 Annex C)."""
    from pynetdicom.status import GENERAL_STATUS, STORAGE_SERVICE_CLASS_STATUS

    if code in STORAGE_SERVICE_CLASS_STATUS:
        category, description = STORAGE_SERVICE_CLASS_STATUS[code]
    elif code in GENERAL_STATUS:
        category, description = GENERAL_STATUS[code]
    elif 0xA700 <= code <= 0xA7FF:
        category, description = "Failure", "Refused: Out of Resources"
    elif 0xA900 <= code <= 0xA9FF:
        category, description = "Failure", "Data Set does not match SOP Class"
    elif 0xC000 <= code <= 0xCFFF:
        category, description = "Failure", "Cannot understand"
    else:
        category, description = _category(code), "no meaning defined by the standard"
    return f"{category}, {description}".rstrip(", ") if description else category


def _sop_class_name(uid: str) -> str:
    name = UID(uid).name
    return name if name and name != uid else "this SOP class"

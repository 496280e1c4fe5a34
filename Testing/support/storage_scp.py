"""A pynetdicom storage SCP on a free loopback port (127.0.0.1 only) that records what it is asked and receives."""

from __future__ import annotations

import pydicom
from pynetdicom import AE, evt

LOOPBACK = "127.0.0.1"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
REG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.3"
VERIFICATION = "1.2.840.10008.1.1"


class StorageSCP:
    """A storage SCP on a free loopback port that records what it is asked and what it receives."""

    def __init__(self, sop_classes=(CT_IMAGE_STORAGE, REG_STORAGE), status=0x0000, calling_aets=()):
        self.received: dict[str, pydicom.Dataset] = {}
        self.requested: list[str] = []
        self.status = status
        ae = AE(ae_title="STORESCP")
        ae.add_supported_context(VERIFICATION)
        for uid in sop_classes:
            ae.add_supported_context(uid)
        ae.require_calling_aet = list(calling_aets)
        handlers = [(evt.EVT_C_STORE, self._store), (evt.EVT_REQUESTED, self._requested)]
        self.server = ae.start_server((LOOPBACK, 0), block=False, evt_handlers=handlers)
        self.port = self.server.server_address[1]

    def _requested(self, event):
        self.requested = [str(cx.abstract_syntax) for cx in event.assoc.requestor.requested_contexts]

    def _store(self, event):
        if self.status == 0x0000:
            dataset = event.dataset
            dataset.file_meta = event.file_meta
            self.received[str(dataset.SOPInstanceUID)] = dataset
        return self.status

    @property
    def peer(self) -> str:
        return f"STORESCP@{LOOPBACK}:{self.port}"

    def stop(self):
        self.server.shutdown()

"""PSI between org nodes: the engine (``engines.psi``) over the nodes' authenticated HTTPS links."""

from .sessions import MAX_RUN_AGE_MS, PSI_CODE, PSI_CODE_DIGEST, PsiRefused, PsiSessions, output_digest
from .transport import MAX_MESSAGE, HttpTransport, Inbox

__all__ = [
    "MAX_MESSAGE",
    "MAX_RUN_AGE_MS",
    "PSI_CODE",
    "PSI_CODE_DIGEST",
    "HttpTransport",
    "Inbox",
    "PsiRefused",
    "PsiSessions",
    "output_digest",
]

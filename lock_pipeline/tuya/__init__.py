"""Tuya Cloud OpenAPI for door locks: request signing, the password-ticket crypto, and the client."""

from lock_pipeline.tuya.client import TempPassword, TuyaClient, TuyaCode, TuyaDevice, TuyaError

__all__ = ["TempPassword", "TuyaClient", "TuyaCode", "TuyaDevice", "TuyaError"]

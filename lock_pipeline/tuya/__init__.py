"""Tuya Cloud OpenAPI for door locks: request signing, the password-ticket crypto, and the client."""

from lock_pipeline.tuya.client import (
    Battery,
    DataPoint,
    OfflinePassword,
    TempPassword,
    TuyaClient,
    TuyaCode,
    TuyaDevice,
    TuyaError,
    battery_from_status,
    pin_length_from_error,
)

__all__ = ["Battery", "DataPoint", "OfflinePassword", "TempPassword", "TuyaClient", "TuyaCode", "TuyaDevice",
           "TuyaError", "battery_from_status", "pin_length_from_error"]

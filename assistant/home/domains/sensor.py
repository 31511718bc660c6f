"""sensor: HA's mqtt/sensor (read only: value_template, device classes with HA's names)."""

from __future__ import annotations

from assistant.home.domains.base import Domain

DEVICE_CLASSES = {
    "apparent_power": "Apparent power",
    "aqi": "Air quality index",
    "area": "Area",
    "atmospheric_pressure": "Atmospheric pressure",
    "battery": "Battery",
    "blood_glucose_concentration": "Blood glucose concentration",
    "carbon_dioxide": "Carbon dioxide",
    "carbon_monoxide": "Carbon monoxide",
    "conductivity": "Conductivity",
    "current": "Current",
    "data_rate": "Data rate",
    "data_size": "Data size",
    "date": "Date",
    "distance": "Distance",
    "duration": "Duration",
    "energy": "Energy",
    "energy_distance": "Energy per distance",
    "energy_storage": "Stored energy",
    "enum": "",
    "frequency": "Frequency",
    "gas": "Gas",
    "humidity": "Humidity",
    "illuminance": "Illuminance",
    "irradiance": "Irradiance",
    "moisture": "Moisture",
    "monetary": "Balance",
    "nitrogen_dioxide": "Nitrogen dioxide",
    "nitrogen_monoxide": "Nitrogen monoxide",
    "nitrous_oxide": "Nitrous oxide",
    "ozone": "Ozone",
    "ph": "pH",
    "pm1": "PM1",
    "pm10": "PM10",
    "pm25": "PM2.5",
    "power": "Power",
    "power_factor": "Power factor",
    "precipitation": "Precipitation",
    "precipitation_intensity": "Precipitation intensity",
    "pressure": "Pressure",
    "reactive_power": "Reactive power",
    "signal_strength": "Signal strength",
    "sound_pressure": "Sound pressure",
    "speed": "Speed",
    "sulphur_dioxide": "Sulphur dioxide",
    "temperature": "Temperature",
    "timestamp": "Timestamp",
    "volatile_organic_compounds": "Volatile organic compounds",
    "volatile_organic_compounds_parts": "Volatile organic compounds parts",
    "voltage": "Voltage",
    "volume": "Volume",
    "volume_flow_rate": "Volume flow rate",
    "volume_storage": "Stored volume",
    "water": "Water",
    "weight": "Weight",
    "wind_direction": "Wind direction",
    "wind_speed": "Wind speed",
}
"""HA 2025.4's SensorDeviceClass values and their English names."""


class Sensor(Domain):
    name = "sensor"
    required = ("state_topic",)
    device_classes = DEVICE_CLASSES
    intents = ("HassClimateGetTemperature",)

    def usable(self, intent: str, entity: object) -> bool:
        return False


DOMAIN = Sensor()

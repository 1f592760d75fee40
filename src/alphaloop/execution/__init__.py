"""Order lifecycle, the simulated broker with fill, commission and slippage models, and accounting."""

from alphaloop.execution.broker import BrokerConfig, SimulatedBroker
from alphaloop.execution.costs import Commission, FixedSlippage, NoSlippage, VolumeShareSlippage

__all__ = ["BrokerConfig", "Commission", "FixedSlippage", "NoSlippage", "SimulatedBroker", "VolumeShareSlippage"]

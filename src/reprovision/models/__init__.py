"""Networks (plain nn.Modules) and the one LightningModule that trains any of them."""

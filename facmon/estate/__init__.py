"""The estate: what is installed where and who looks after it.

The site file and its entries (`site`, `entries`, `site_checks`), the asset register (`assets`, `asset_store`),
technician rotas (`rota`), maintenance windows (`maintenance`) and the on-call lookup (`on_call`). Used by the
collectors, the rules, the API and the notifier; imports only the kernel.
"""

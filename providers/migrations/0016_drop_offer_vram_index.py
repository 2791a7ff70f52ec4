"""Drop `offer_vram` (vram_gb, id, covering the marketplace's filter columns, over the offers on
sale). A VRAM minimum is decided per facet combination from OfferFacet's VRAM range, and the
offers of the combinations with offers on both sides of it are found through offer_facet_key,
which carries vram_gb: at 100,000 offers no marketplace or API request read offer_vram
(pg_stat_user_indexes after every benchmark row, the pages' sort orders, detail pages and the
catalog API), while every offer a poll wrote paid for it. On SQLite it was never built.
"""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('providers', '0015_offer_facet_key_sort_indexes'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='offer',
            name='offer_vram',
        ),
    ]

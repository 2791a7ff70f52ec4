"""Index an offer's GPU model and LLM model only where it has one. Django's index on each
foreign key held every offer, NULLs included: ~40% of the offers (the LLM ones) in the GPU
model's and ~60% (the GPU ones) in the LLM model's, an entry each that every poll paid for and
no query reads (the queries, a model's offers and the SET NULL when a model is deleted, ask
for one id, which the partial index serves). Django drops and re-adds each foreign key
constraint around its index (one validating scan of the offers).
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('providers', '0016_drop_offer_vram_index'),
    ]

    operations = [
        migrations.AlterField(
            model_name='offer',
            name='gpu',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, to='providers.gpumodel'),
        ),
        migrations.AlterField(
            model_name='offer',
            name='llm_model',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='offers', to='providers.llmmodel'),
        ),
        migrations.AddIndex(
            model_name='offer',
            index=models.Index(condition=models.Q(('gpu__isnull', False)), fields=['gpu'], name='offer_gpu'),
        ),
        migrations.AddIndex(
            model_name='offer',
            index=models.Index(condition=models.Q(('llm_model__isnull', False)), fields=['llm_model'], name='offer_llm_model'),
        ),
    ]

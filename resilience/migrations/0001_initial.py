# SharedState came from the health app with its rows: health.0002 renamed the table, so this
# only records the model in resilience's state.

from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('health', '0002_sharedstate_to_resilience'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='SharedState',
                    fields=[
                        ('key', models.CharField(max_length=200, primary_key=True, serialize=False)),
                        ('value', models.JSONField(default=dict)),
                        ('expires_at', models.DateTimeField(blank=True, db_index=True, null=True)),
                    ],
                ),
            ],
        ),
    ]

# SharedState moved to the resilience app: its table is renamed here and the model leaves
# health's state; resilience.0001_initial takes it over without touching the database.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('health', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.AlterModelTable(name='sharedstate', table='resilience_sharedstate'),
            ],
            state_operations=[
                migrations.DeleteModel(name='SharedState'),
            ],
        ),
    ]

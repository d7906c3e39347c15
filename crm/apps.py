from django.apps import AppConfig


class CrmConfig(AppConfig):
    name = "crm"
    verbose_name = "CRM"

    def ready(self):
        from django.db.backends.signals import connection_created
        from django.db.models.signals import post_migrate

        from . import rls

        post_migrate.connect(rls.on_post_migrate, dispatch_uid="crm.rls.install")
        connection_created.connect(rls.on_connection_created, dispatch_uid="crm.rls.connection")

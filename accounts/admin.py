"""The admin console's user form, with the Users page's rule: deactivating someone there ends
their API tokens too (a superuser uses either; neither may leave a token to wake up again)."""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from accounts.services import api_tokens_end

User = get_user_model()


class PersonAdmin(UserAdmin):
    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and "is_active" in form.changed_data and not obj.is_active:
            why = f"{obj.get_username()} deactivated in the admin console"
            api_tokens_end(person=obj, actor=request.user, why=why)


admin.site.unregister(User)
admin.site.register(User, PersonAdmin)

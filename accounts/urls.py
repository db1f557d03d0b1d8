from django.urls import path

from accounts import views

urlpatterns = [
    path("tokens/", views.tokens, name="account-tokens"),
    path("tokens/<int:token_id>/revoke/", views.token_revoke, name="account-token-revoke"),
    path("users/", views.users, name="account-users"),
    path("users/<str:username>/", views.user_change, name="account-user-change"),
]

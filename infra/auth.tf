# Sign-in for WRITE_AUTH=cognito / READ_AUTH=cognito: a user pool, an `admins` group (may
# delete anyone's images) and one public app client for the gallery. Created only when
# cognito_user_pool is true (`make package` turns it on when the stage uses cognito).
resource "aws_cognito_user_pool" "users" {
  count                    = var.cognito_user_pool ? 1 : 0
  name                     = "${local.prefix}-users"
  username_attributes      = ["email"]
  auto_verified_attributes = ["email"]
  mfa_configuration        = "OPTIONAL"
  deletion_protection      = var.force_destroy ? "INACTIVE" : "ACTIVE"

  # Accounts are made by an administrator (AdminCreateUser), not by strangers signing up.
  admin_create_user_config {
    allow_admin_create_user_only = true
  }

  password_policy {
    minimum_length                   = 12
    require_lowercase                = true
    require_uppercase                = true
    require_numbers                  = true
    require_symbols                  = false
    temporary_password_validity_days = 3
  }

  software_token_mfa_configuration {
    enabled = true
  }

  account_recovery_setting {
    recovery_mechanism {
      name     = "verified_email"
      priority = 1
    }
  }
}

resource "aws_cognito_user_group" "admins" {
  count        = var.cognito_user_pool ? 1 : 0
  name         = var.cognito_admin_group
  user_pool_id = aws_cognito_user_pool.users[0].id
  description  = "May delete any image (DELETE /images/{id}); other users only their own."
}

resource "aws_cognito_user_pool_client" "app" {
  count        = var.cognito_user_pool ? 1 : 0
  name         = "${local.prefix}-app"
  user_pool_id = aws_cognito_user_pool.users[0].id
  # A browser or CLI client: no secret, SRP sign-in, short-lived tokens.
  generate_secret               = false
  explicit_auth_flows           = ["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
  prevent_user_existence_errors = "ENABLED"
  enable_token_revocation       = true
  id_token_validity             = 60
  access_token_validity         = 60
  refresh_token_validity        = 30
  token_validity_units {
    id_token      = "minutes"
    access_token  = "minutes"
    refresh_token = "days"
  }
}
